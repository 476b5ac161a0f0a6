//! `cargo bench`: one training step (forward, backward, AdamW; batch 16 x context 64) and
//! sampling with and without the key/value cache, for the default model on burn flex.
//! Figures and the machine they were measured on: BENCHMARKS.md.

use burn::tensor::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rlhf_playground::bench::{TrainStep, UpdateBencher, random_batch};
use rlhf_playground::block_on;
use rlhf_playground::model::GptConfig;
use rlhf_playground::rng::Rng;
use rlhf_playground::sample::{SampleConfig, generate};
use rlhf_playground::session::SessionConfig;

fn train_step(c: &mut Criterion) {
    let cfg = GptConfig::new();
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(16 * 64));
    let mut trainer = TrainStep::new(&cfg, 16, 64, &Device::flex());
    group.bench_function("flex_b16_t64", |b| b.iter(|| trainer.step()));
    group.finish();
}

fn sampling(c: &mut Criterion) {
    let cfg = GptConfig::new();
    let model = TrainStep::new(&cfg, 1, 8, &Device::flex()).model();
    let prompts: Vec<Vec<u32>> = random_batch(&cfg, 4, 8, 2);
    let sc = SampleConfig::new()
        .with_temperature(0.0)
        .with_max_new_tokens(48);
    let mut group = c.benchmark_group("sample_4x48");
    group.sample_size(10);
    for cache in [true, false] {
        let name = if cache { "kv_cache" } else { "no_cache" };
        group.bench_function(name, |b| {
            b.iter(|| block_on(generate(&model, &prompts, &sc, &mut Rng::new(0), cache)))
        });
    }
    group.finish();
}

fn update(c: &mut Criterion) {
    // One full RLHF update (SFT, reward model, PPO, samples) with the default configuration,
    // after 20 ratings; each iteration records one more thumbs rating and updates.
    let mut group = c.benchmark_group("rlhf_update");
    group.sample_size(10);
    let cfg = SessionConfig::new();
    let mut bencher = UpdateBencher::new(&Device::flex(), 20, cfg);
    group.bench_function("flex_default_after_20_ratings", |b| {
        b.iter(|| bencher.run_one())
    });
    group.finish();
}

criterion_group!(benches, train_step, sampling, update);
criterion_main!(benches);
