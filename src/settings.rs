//! Every setting a person can change, declared once.
//!
//! Each stage's config struct is written with [`config!`]: one line per setting gives its name,
//! type, default, allowed range, label and whether the page shows it at once or under "More";
//! the `///` line above it is its help text, in the docs and on the page alike. From that one
//! declaration come the struct itself (a burn `Config`, with `new()` and `with_*`), the
//! [`schema`] the page builds its Settings panel from, [`validate`], and [`apply`], which the
//! CLI's `--set KEY=VALUE` and the page's Apply button both go through. Adding a knob is one
//! line. Why each default is what it is: docs/TUNING.md.

use crate::error::{Error, Result};
use crate::session::SessionConfig;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The kind of value a setting takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Float,
    Int,
    Bool,
    /// One of a few named options ([`SettingType::OPTIONS`]).
    Choice,
}

/// The [`Kind`] of a Rust field type.
pub trait SettingType {
    const KIND: Kind;
    /// The names a [`Kind::Choice`] takes, as serde writes them.
    const OPTIONS: &'static [&'static str] = &[];
}

impl SettingType for f64 {
    const KIND: Kind = Kind::Float;
}
impl SettingType for f32 {
    const KIND: Kind = Kind::Float;
}
impl SettingType for usize {
    const KIND: Kind = Kind::Int;
}
impl SettingType for u64 {
    const KIND: Kind = Kind::Int;
}
impl SettingType for bool {
    const KIND: Kind = Kind::Bool;
}

/// One setting of a config struct, as [`config!`] declares it.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// What a choice takes (empty for numbers and switches).
    pub options: &'static [&'static str],
    /// Inclusive bounds (none for switches, choices and the seed).
    pub range: Option<(f64, f64)>,
    /// Shown under "More" on the page rather than at once.
    pub advanced: bool,
}

/// A config struct declared with [`config!`]: its group, its settings and its nested configs.
pub trait Declared {
    /// The group its settings appear under (a stage, sampling, the session).
    const GROUP: &'static str;
    const FIELDS: &'static [Field];

    /// Appends the settings of the configs nested in this one, named under `prefix`.
    fn nested(_prefix: &str, _out: &mut Vec<Setting>) {}

    /// Appends every setting of this config, nested ones first, named under `prefix`.
    fn collect(prefix: &str, out: &mut Vec<Setting>) {
        Self::nested(prefix, out);
        for f in Self::FIELDS {
            out.push(Setting {
                name: join(prefix, f.name),
                group: Self::GROUP,
                label: f.label,
                help: f.help.trim(),
                kind: f.kind,
                options: f.options,
                min: f.range.map(|r| r.0),
                max: f.range.map(|r| r.1),
                default: Value::Null,
                advanced: f.advanced,
            });
        }
    }
}

/// `prefix.name`, or `name` at the top.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A setting of a session, as the page's Settings panel and the CLI's `--set` see it.
#[derive(Clone, Debug, Serialize)]
pub struct Setting {
    /// Dotted path into [`SessionConfig`]: `ppo.lr`, `sample.temperature`, `seed`.
    pub name: String,
    pub group: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// What a choice takes.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub options: &'static [&'static str],
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The value in a fresh session.
    pub default: Value,
    pub advanced: bool,
}

/// Declares a config struct of settings (see the module doc). Each setting is one line:
///
/// ```text
/// /// Help text: what it does, in one line.
/// name: type = default in min..=max, "Label", basic;
/// ```
///
/// `in min..=max` is left out for switches; `basic` settings show at once on the page,
/// `advanced` ones under "More". A `nested { … }` block before the settings holds configs
/// within this one (`field: Type = "default expression";`).
macro_rules! config {
    (
        $(#[doc = $doc:tt])*
        pub struct $name:ident in $group:tt {
            $(nested {
                $(
                    #[doc = $ndoc:tt]
                    $nfield:ident: $nty:ident = $ndefault:tt;
                )*
            })?
            $(
                #[doc = $help:tt]
                $field:ident: $ty:ident = $default:tt $(in $lo:tt ..= $hi:tt)?, $label:tt, $level:ident;
            )*
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(burn::prelude::Config, Debug, PartialEq)]
        pub struct $name {
            $($(
                #[doc = $ndoc]
                #[config(default = $ndefault)]
                pub $nfield: $nty,
            )*)?
            $(
                #[doc = $help]
                #[config(default = $default)]
                pub $field: $ty,
            )*
        }

        impl $crate::settings::Declared for $name {
            const GROUP: &'static str = $group;
            const FIELDS: &'static [$crate::settings::Field] = &[$(
                $crate::settings::Field {
                    name: stringify!($field),
                    label: $label,
                    help: $help,
                    kind: <$ty as $crate::settings::SettingType>::KIND,
                    options: <$ty as $crate::settings::SettingType>::OPTIONS,
                    range: $crate::settings::config!(@range $($lo, $hi)?),
                    advanced: $crate::settings::config!(@level $level),
                },
            )*];

            #[allow(unused_variables)]
            fn nested(prefix: &str, out: &mut Vec<$crate::settings::Setting>) {
                $($(
                    <$nty as $crate::settings::Declared>::collect(
                        &$crate::settings::join(prefix, stringify!($nfield)),
                        out,
                    );
                )*)?
            }
        }
    };
    (@range $lo:tt, $hi:tt) => { Some(($lo as f64, $hi as f64)) };
    (@range) => { None };
    (@level basic) => { false };
    (@level advanced) => { true };
}
pub(crate) use config;

/// Every setting of a session, grouped by stage (SFT, reward model, PPO, sampling, session),
/// with its default.
pub fn schema() -> Vec<Setting> {
    let mut out = Vec::new();
    SessionConfig::collect("", &mut out);
    let defaults = values(&SessionConfig::new());
    for s in &mut out {
        s.default = defaults.get(&s.name).cloned().unwrap_or(Value::Null);
    }
    out
}

/// Each setting's value in `cfg`, by name.
pub fn values(cfg: &SessionConfig) -> BTreeMap<String, Value> {
    let tree = serde_json::to_value(cfg).expect("a config serialises");
    let mut out = BTreeMap::new();
    flatten("", &tree, &mut out);
    out
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&join(prefix, k), v, out);
            }
        }
        v => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

/// Checks every setting against its range, with a message naming the first one out of range.
pub fn validate(cfg: &SessionConfig) -> Result<()> {
    let values = values(cfg);
    for s in schema() {
        let (Some(lo), Some(hi)) = (s.min, s.max) else {
            continue;
        };
        let v = values
            .get(&s.name)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        // Written so that NaN fails too.
        if !(v >= lo && v <= hi) {
            return Err(Error::Config(format!(
                "{} must be between {lo} and {hi} (got {v})",
                s.name
            )));
        }
    }
    Ok(())
}

/// `cfg` with the settings in `changes` (name → value) changed, checked: an unknown name, a
/// value of the wrong kind or out of range is refused with a message, and nothing changes.
pub fn apply(cfg: &SessionConfig, changes: &BTreeMap<String, Value>) -> Result<SessionConfig> {
    let schema = schema();
    let mut tree = serde_json::to_value(cfg).expect("a config serialises");
    for (name, value) in changes {
        let Some(s) = schema.iter().find(|s| s.name == *name) else {
            return Err(Error::Config(format!("there is no setting named {name:?}")));
        };
        let fits = match s.kind {
            Kind::Bool => value.is_boolean(),
            Kind::Int => value.is_u64(),
            Kind::Float => value.is_number(),
            Kind::Choice => value.as_str().is_some_and(|v| s.options.contains(&v)),
        };
        if !fits {
            let like = match s.kind {
                Kind::Bool => "true or false".to_string(),
                Kind::Int => "a whole number of 0 or more".to_string(),
                Kind::Float => "a number".to_string(),
                Kind::Choice => format!("one of {}", s.options.join(", ")),
            };
            return Err(Error::Config(format!("{name} takes {like}, not {value}")));
        }
        let mut slot = &mut tree;
        for part in name.split('.') {
            slot = slot.get_mut(part).expect("the schema's names are paths");
        }
        *slot = value.clone();
    }
    let cfg: SessionConfig =
        serde_json::from_value(tree).map_err(|e| Error::Config(format!("settings: {e}")))?;
    validate(&cfg)?;
    Ok(cfg)
}

/// `cfg` with `KEY=VALUE` assignments applied (the CLI's `--set ppo.lr=3e-4`, `--set
/// method=dpo`), checked as by [`apply`].
pub fn assign(cfg: &SessionConfig, assignments: &[String]) -> Result<SessionConfig> {
    let schema = schema();
    let mut changes = BTreeMap::new();
    for a in assignments {
        let (key, value) = a
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("{a}: expected KEY=VALUE, e.g. ppo.lr=3e-4")))?;
        let (key, value) = (key.trim(), value.trim());
        let choice = schema
            .iter()
            .any(|s| s.name == key && s.kind == Kind::Choice);
        let value: Value = match choice {
            // A choice is written bare: method=dpo.
            true => Value::String(value.trim_matches('"').to_string()),
            false => serde_json::from_str(value).map_err(|_| {
                Error::Config(format!("{a}: {value:?} is not a number or true/false"))
            })?,
        };
        changes.insert(key.to_string(), value);
    }
    apply(cfg, &changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_of_the_config_is_declared_once_with_a_label_and_help() {
        let schema = schema();
        let names: Vec<&str> = schema.iter().map(|s| s.name.as_str()).collect();
        let fields: Vec<String> = values(&SessionConfig::new()).into_keys().collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "a setting declared twice");
        assert_eq!(sorted, fields, "the schema and the config's fields differ");
        for s in &schema {
            assert!(!s.label.is_empty() && !s.help.is_empty(), "{s:?}");
            assert!(!s.default.is_null(), "{} has no default", s.name);
            if let (Some(lo), Some(hi)) = (s.min, s.max) {
                let d = s.default.as_f64().unwrap();
                assert!(
                    lo <= d && d <= hi,
                    "{}'s default is out of its range",
                    s.name
                );
            }
        }
        // The two KL settings say what they do.
        assert!(names.contains(&"ppo.kl_target") && names.contains(&"ppo.early_stop_kl"));
        assert!(!names.contains(&"ppo.target_kl"));
    }

    #[test]
    fn every_bounded_setting_is_validated_at_its_bounds_and_beyond() {
        let cfg = SessionConfig::new();
        for s in schema() {
            let (Some(lo), Some(hi)) = (s.min, s.max) else {
                continue;
            };
            let at = |v: f64| {
                let v = if s.kind == Kind::Int {
                    Value::from(v as u64)
                } else {
                    Value::from(v)
                };
                apply(&cfg, &BTreeMap::from([(s.name.clone(), v)]))
            };
            assert!(at(lo).is_ok() && at(hi).is_ok(), "{} at its bounds", s.name);
            let err = at(hi * 2.0 + 1.0).unwrap_err();
            assert!(
                matches!(&err, Error::Config(m) if m.starts_with(&s.name)),
                "{}: {err:?}",
                s.name
            );
            if lo > 0.0 {
                assert!(at(lo / 2.0).is_err(), "{} below its range", s.name);
            }
        }
    }

    #[test]
    fn bad_assignments_are_refused_with_a_message_and_change_nothing() {
        let cfg = SessionConfig::new();
        let ok = assign(
            &cfg,
            &["ppo.lr=3e-4".into(), "ppo.adaptive_kl=false".into()],
        )
        .unwrap();
        assert_eq!(ok.ppo.lr, 3e-4);
        assert!(!ok.ppo.adaptive_kl);
        let dpo = assign(&cfg, &["method=dpo".into()]).unwrap();
        assert_eq!(dpo.method, crate::session::Method::Dpo);
        for (bad, says) in [
            ("ppo.lr", "expected KEY=VALUE"),
            ("ppo.nope=1", "no setting named"),
            ("ppo=1", "no setting named"),
            ("ppo.lr=fast", "not a number"),
            ("ppo.adaptive_kl=1", "true or false"),
            ("ppo.epochs=1.5", "whole number"),
            ("ppo.epochs=-1", "whole number"),
            ("ppo.lr=5", "ppo.lr must be between"),
            (
                "method=rlhf",
                "method takes one of ppo, dpo, kto, grpo, bon, sft",
            ),
            ("method=1", "method takes one of"),
        ] {
            let err = assign(&cfg, &[bad.to_string()]).unwrap_err();
            assert!(
                matches!(&err, Error::Config(m) if m.contains(says)),
                "{bad}: {err:?}"
            );
        }
    }
}
