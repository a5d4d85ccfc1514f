//! Ember's GPT on Burn: [`GptConfig`] and [`Gpt`] (pre-norm decoder, GPT-2 by default), device
//! choice with CPU fallback ([`select_device`]), KV-cached generation ([`generate()`]) and
//! self-contained, verified checkpoint directories ([`checkpoint`]).
//!
//! ```
//! use burn::prelude::*;
//! use ember_model::{GptConfig, masked_loss};
//!
//! let device = Device::flex();
//! device.seed(0);
//! let cfg = GptConfig::preset("tiny", 64).unwrap();
//! let model = cfg.init(&device);
//! let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i32, 2, 3, 4], [1, 4]), &device);
//! let logits = model.forward(tokens);
//! assert_eq!(logits.dims(), [1, 4, 64]);
//! // A fresh model predicts close to uniformly: loss ≈ ln(64).
//! let targets = Tensor::<2, Int>::from_data(TensorData::new(vec![9i32, 30, 17, 50], [1, 4]), &device);
//! let loss: f32 = masked_loss(logits, targets, Tensor::ones([1, 4], &device)).into_scalar();
//! assert!((loss - 64f32.ln()).abs() < 0.1);
//! ```

pub mod attention;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod device;
mod error;
pub mod export;
pub mod fused;
pub mod fused_bf16;
pub mod fused_norm;
pub mod fused_qkv;
pub mod fused_rows;
pub mod generate;
pub mod gpt;
pub mod inspect;
pub mod layers;
pub mod ops;

pub use attention::KvCache;
pub use batch::{HostBatch, Visibility};
pub use config::{GptConfig, MlpKind, NormKind, PRESETS, Positions};
pub use device::{
    DeviceChoice, Precision, SelectedDevice, on_compute_threads, select_device, with_seed,
};
pub use error::{ModelError, Result};
pub use generate::{Decoder, Generation, SamplingConfig, Step, StopReason, generate, sample};
pub use gpt::{Block, Gpt, masked_loss, masked_nll_sum};
