//! RLHF Playground: a small GPT that learns from a person's ratings, in the browser or natively.
//!
//! See ARCHITECTURE.md for how the modules fit together.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod checkpoint;
pub mod corpus;
pub mod eval;
pub mod feedback;
pub mod model;
pub mod pretrain;
pub mod rng;
pub mod sample;
pub mod sft;
pub mod tokenizer;

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
