//! Saving and loading model weights (burn's burnpack records) and their metadata.
//!
//! The committed base model is stored in f16 (half the bytes of f32; a few MB at most) and
//! widened back to f32 on load. Checkpoints taken during a session keep f32 and round-trip
//! bit for bit.

use crate::error::Error;
use crate::model::{Gpt, GptConfig};
use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, FloatDType};
use serde::{Deserialize, Serialize};

/// The base model's weights, as committed under `www/assets/`.
pub const BUNDLED_WEIGHTS: &[u8] = include_bytes!("../www/assets/base.bpk");
/// The base model's metadata, as committed under `www/assets/`.
pub const BUNDLED_META: &str = include_str!("../www/assets/base.json");

/// What is known about a saved model besides its weights.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelMeta {
    /// Shape of the model.
    pub config: GptConfig,
    /// Optimiser steps taken in pretraining.
    pub steps: usize,
    /// Seed of the pretraining run.
    pub seed: u64,
    /// (step, training loss, held-out loss) along the way.
    pub curve: Vec<(usize, f64, f64)>,
    /// Wall-clock seconds the pretraining took, and on what.
    pub seconds: f64,
    pub machine: String,
}

/// A weights error, as the engine reports it.
fn err(e: impl std::fmt::Display) -> Error {
    Error::Weights(format!("weights: {e}"))
}

struct CastFloats(FloatDType);

impl ModuleMapper for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// Serialises weights; `half` stores them as f16.
pub fn to_bytes(model: &Gpt, half: bool) -> Result<Vec<u8>, Error> {
    let model = if half {
        model.clone().map(&mut CastFloats(FloatDType::F16))
    } else {
        model.clone()
    };
    let bytes = model.into_record().into_bytes().map_err(err)?;
    Ok(bytes.to_vec())
}

/// Loads weights saved by [`to_bytes`] into a model of shape `config` on `device` (as f32).
pub fn from_bytes(config: &GptConfig, bytes: &[u8], device: &Device) -> Result<Gpt, Error> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(err)?
        .cast_to_module_dtype();
    config.init(device).try_load_record(record).map_err(err)
}

/// The committed base model and its metadata.
pub fn bundled(device: &Device) -> Result<(Gpt, ModelMeta), Error> {
    let meta: ModelMeta = serde_json::from_str(BUNDLED_META).map_err(err)?;
    let model = from_bytes(&meta.config, BUNDLED_WEIGHTS, device)?;
    Ok((model, meta))
}
