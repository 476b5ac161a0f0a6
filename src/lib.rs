//! RLHF Playground: a small GPT that learns from a person's ratings, in the browser or natively.
//!
//! See ARCHITECTURE.md for how the modules fit together.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod bon;
pub mod checkpoint;
pub mod corpus;
pub mod dpo;
pub mod error;
pub mod eval;
pub mod feedback;
pub mod grad;
pub mod grpo;
pub mod kto;
pub mod metrics;
pub mod model;
pub mod ppo;
pub mod pretrain;
pub mod rater;
pub mod report;
pub mod reward;
pub mod rng;
pub mod sample;
pub mod session;
pub mod settings;
pub mod sft;
pub mod simulate;
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
pub mod web;

use burn::prelude::*;

/// Reads a float tensor back to the CPU. Always async: on WebGPU in the browser a blocking
/// read traps, so every readback in the engine goes through here (natively, under
/// [`block_on`], it returns at once).
pub async fn read<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data_async()
        .await
        .expect("reading a tensor back")
        .try_into_vec_as::<f32>()
        .expect("f32 data")
}

/// Runs a future to completion on the current thread (native only; the browser has its own
/// event loop). The engine's readbacks are async so that the same code runs on WebGPU, where a
/// blocking read is not allowed.
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Milliseconds since some fixed moment, for stage timings (`Instant` is not available in the
/// browser, where `Date.now()` is).
pub fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
            * 1000.0
    }
}
