//! Cross-request batching for the CLIP image encoder (the shape of TEI's queue).
//!
//! Requests hand in preprocessed pixels and await their embedding. One model thread takes
//! the first waiting job, gathers whatever else arrives within `max_wait` (up to
//! `max_batch`), and runs them as one inference call. Decoding and preprocessing happen on
//! tokio's blocking pool meanwhile, so the CPU-heavy stages overlap.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::model::ModelError;
use crate::model::clip::ClipVisual;
use crate::model::clip::preprocess::PIXELS_PER_IMAGE;

/// Jobs waiting beyond this many are refused (the caller answers 503), bounding memory:
/// each waiting job holds 600 KB of pixels.
const QUEUE_CAPACITY: usize = 512;

struct Job {
    pixels: Vec<f32>,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Vec<f32>, ModelError>>,
}

#[derive(Clone)]
pub struct Batcher {
    tx: SyncSender<Job>,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("the embedding queue is full")]
    Overloaded,
    #[error("the model thread has stopped")]
    Stopped,
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl Batcher {
    /// Starts the model thread. It stops when every `Batcher` clone is dropped.
    pub fn start(model: Arc<ClipVisual>, max_batch: usize, max_wait: Duration) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE_CAPACITY);
        let max_batch = max_batch.max(1);
        std::thread::Builder::new()
            .name("clip-visual".into())
            .spawn(move || run(&model, &rx, max_batch, max_wait))
            .expect("spawning the model thread at start-up; this is a bug if it fails");
        Self { tx }
    }

    /// The raw embedding of one preprocessed image (`[3,224,224]` f32).
    pub async fn embed(&self, pixels: Vec<f32>) -> Result<Vec<f32>, BatchError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            pixels,
            enqueued: Instant::now(),
            reply,
        };
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => BatchError::Overloaded,
            TrySendError::Disconnected(_) => BatchError::Stopped,
        })?;
        Ok(rx.await.map_err(|_| BatchError::Stopped)??)
    }
}

fn run(model: &ClipVisual, rx: &Receiver<Job>, max_batch: usize, max_wait: Duration) {
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + max_wait;
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(job) => jobs.push(job),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let n = jobs.len();
        let mut pixels = Vec::with_capacity(n * PIXELS_PER_IMAGE);
        for job in &jobs {
            metrics::histogram!("ongi_inference_queue_seconds").record(job.enqueued.elapsed().as_secs_f64());
            pixels.extend_from_slice(&job.pixels);
        }
        let started = Instant::now();
        let result = model.embed(pixels, n);
        metrics::histogram!("ongi_inference_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("ongi_inference_batch_images").record(n as f64);
        match result {
            Ok(embeddings) => {
                for (job, e) in jobs.into_iter().zip(embeddings) {
                    let _ = job.reply.send(Ok(e));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = n, "CLIP inference failed");
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
