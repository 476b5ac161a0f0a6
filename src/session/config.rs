//! A session's settings: the three stages' own, how the replies shown are sampled, and how
//! the stages are fed.

use crate::bon::BonConfig;
use crate::dpo::DpoConfig;
use crate::error::Result;
use crate::grpo::GrpoConfig;
use crate::kto::KtoConfig;
use crate::ppo::PpoConfig;
use crate::reward::RewardConfig;
use crate::sample::SampleConfig;
use crate::settings::config;
use crate::sft::SftConfig;
use serde::{Deserialize, Serialize};

/// How the policy learns from the ratings, after SFT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A reward model fitted on every rating, then PPO against it (Ouyang et al. 2022).
    Ppo,
    /// DPO on pairs of replies to one prompt, no reward model (Rafailov et al. 2023).
    Dpo,
    /// KTO on replies rated good or bad, no reward model (Ethayarajh et al. 2024).
    Kto,
    /// GRPO against the reward model: groups of replies to one prompt, no value head (Shao et
    /// al. 2024).
    Grpo,
    /// Best-of-N fine-tuning against the reward model: N replies to each prompt, SFT on the
    /// best that it believes liked (rejection sampling, Touvron et al. 2023).
    Bon,
    /// SFT alone, on written answers and best-rated replies: the baseline.
    Sft,
}

impl Method {
    /// Every method, in the order the CLI and the page list them.
    pub const ALL: [Method; 6] = [
        Method::Ppo,
        Method::Dpo,
        Method::Kto,
        Method::Grpo,
        Method::Bon,
        Method::Sft,
    ];

    /// Its name on the command line and the page.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ppo => "ppo",
            Method::Dpo => "dpo",
            Method::Kto => "kto",
            Method::Grpo => "grpo",
            Method::Bon => "bon",
            Method::Sft => "sft",
        }
    }

    /// The method with this name.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether it fits and reads the reward model.
    pub fn uses_reward_model(self) -> bool {
        matches!(self, Method::Ppo | Method::Grpo | Method::Bon)
    }
}

impl crate::settings::SettingType for Method {
    const KIND: crate::settings::Kind = crate::settings::Kind::Choice;
    const OPTIONS: &'static [&'static str] = &["ppo", "dpo", "kto", "grpo", "bon", "sft"];
}

config! {
    /// Settings of a session: the three stages' own, sampling, and how the stages are fed.
    pub struct SessionConfig in "Session" {
        nested {
            /// Step 1: supervised fine-tuning on demonstrations.
            sft: SftConfig = "SftConfig::new()";
            /// Step 2: the reward model.
            reward: RewardConfig = "RewardConfig::new()";
            /// Step 3: PPO against the reward model.
            ppo: PpoConfig = "PpoConfig::new()";
            /// DPO, in place of the reward model and PPO.
            dpo: DpoConfig = "DpoConfig::new()";
            /// KTO, in place of the reward model and PPO.
            kto: KtoConfig = "KtoConfig::new()";
            /// GRPO, in place of PPO.
            grpo: GrpoConfig = "GrpoConfig::new()";
            /// Best-of-N fine-tuning, in place of PPO.
            bon: BonConfig = "BonConfig::new()";
            /// The replies shown to the person: top-p 0.95 trims the rare tokens that garble a small model (PPO samples in full).
            sample: SampleConfig = "SampleConfig::new().with_top_p(0.95)";
        }
        /// How Pip learns from your ratings after SFT: PPO with a reward model, DPO on pairs, KTO on thumbs, GRPO with a reward model, best-of-N with a reward model, or SFT alone.
        method: Method = "Method::Ppo", "Method", basic;
        /// Share of each PPO batch drawn from your own recent prompts; the rest are corpus prompts.
        own_prompt_share: f64 = 0.5 in 0.0..=1.0, "Your prompts in PPO's batch", advanced;
        /// Pip writes this many replies a round and shows you the ones most worth rating: half it rates best now, half at random (0: it shows what it writes).
        reply_pool: usize = 0 in 0..=16, "Candidates per round", advanced;
        /// Fresh replies shown token by token after each update.
        report_samples: usize = 2 in 0..=8, "Replies shown after an update", advanced;
        /// SFT also practises replies you gave 👍, 4–5 ★ or preferred in a pair (off: written answers only, as in InstructGPT).
        sft_top_rated: bool = true, "Imitate best-rated replies", basic;
        /// Makes a session repeatable: the same seed and ratings give the same model (applies after Reset).
        seed: u64 = 0 in 0..=1_000_000_000, "Seed", basic;
    }
}

impl SessionConfig {
    /// Checks every setting against its declared range ([`crate::settings::validate`]).
    pub fn validate(&self) -> Result<()> {
        crate::settings::validate(self)
    }
}
