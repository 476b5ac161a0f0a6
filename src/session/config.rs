//! A session's settings: the three stages' own, how the replies shown are sampled, and how
//! the stages are fed.

use crate::error::Result;
use crate::ppo::PpoConfig;
use crate::reward::RewardConfig;
use crate::sample::SampleConfig;
use crate::settings::config;
use crate::sft::SftConfig;

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
            /// The replies shown to the person: top-p 0.95 trims the rare tokens that garble a small model (PPO samples in full).
            sample: SampleConfig = "SampleConfig::new().with_top_p(0.95)";
        }
        /// Share of each PPO batch drawn from your own recent prompts; the rest are corpus prompts.
        own_prompt_share: f64 = 0.5 in 0.0..=1.0, "Your prompts in PPO's batch", advanced;
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
