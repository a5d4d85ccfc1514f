//! AdamW with the update of PyTorch's `torch.optim.AdamW` (optionally Muon for the blocks'
//! matrices, [`crate::muon`]), global gradient-norm clipping, and state keyed by parameter
//! *name*.
//!
//! Why not Burn's `AdamW` + `ModuleOptimizer`: its state is keyed by `ParamId`, which a
//! SafeTensors checkpoint does not keep (docs/burn.md, "Checkpoints and resume"), so resuming would need
//! a second copy of the weights in burnpack; its clipping is per tensor (pitfall 8); and its
//! weight decay applies to every parameter unless groups are built by path. Keying the moments
//! by the checkpoint's own tensor names makes `optimizer.safetensors` readable, checkable
//! against the model, and enough — with `model.safetensors` — for a bit-exact resume.
//!
//! Weight decay applies to rank-≥2 weights that multiply activations: the linear layers and,
//! when tied, the token embedding (it is then also the output matrix, as in nanoGPT). Norm
//! gains, biases, the position embedding and an untied input embedding are not decayed.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use ember_model::Gpt;
use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Result, TrainError};
use crate::fused_adamw::adamw_step;
use crate::muon::{MuonConfig, blocks, muon_step};
use ember_kernels::AdamWScalars;

/// Format name in `optimizer.safetensors` metadata of an AdamW run.
pub const FORMAT: &str = "ember-adamw";
/// Format name of a Muon run's state: `momentum_buffer.NAME` for Muon's matrices, AdamW's
/// moments for the rest.
pub const MUON_FORMAT: &str = "ember-muon";
/// Format name of a NorMuon run's state (`train.muon_beta2 > 0`): Muon's, plus
/// `neuron_second_moment.NAME` for each of its matrices.
pub const NORMUON_FORMAT: &str = "ember-normuon";

/// AdamW hyper-parameters (the learning rate is given per step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// AdamW rates of some parameters relative to the scheduled rate (1: the same).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateScales {
    /// `wte`, `wpe`.
    pub embedding: f64,
    /// An untied `lm_head`.
    pub head: f64,
    /// The value embeddings `ve`.
    pub values: f64,
    /// The blocks' weights on the embedded input, `x0_lambdas` (`residual_scalars`); their
    /// weights on the residual stream, `resid_lambdas`, take a hundredth of it: a factor on the
    /// stream compounds through the blocks, an added share of the input does not (the
    /// experiment log of the nanochat copy tablekat/nanochat-rlhf-density-sampling, dev/LOG.md,
    /// 2026-01-11: the multiplicative scalars wanted ~100× less).
    pub scalars: f64,
}

impl Default for RateScales {
    fn default() -> Self {
        RateScales {
            embedding: 1.0,
            head: 1.0,
            values: 1.0,
            scalars: 1.0,
        }
    }
}

impl RateScales {
    fn of(&self, name: &str) -> f64 {
        if name.starts_with("wte.") || name.starts_with("wpe.") {
            self.embedding
        } else if name.starts_with("ve.") {
            self.values
        } else if name.starts_with("lm_head.") {
            self.head
        } else if name == "x0_lambdas" {
            self.scalars
        } else if name == "resid_lambdas" {
            self.scalars / 100.0
        } else {
            1.0
        }
    }
}

struct Moments {
    m: Tensor<1>,
    v: Tensor<1>,
}

/// The optimizer: hyper-parameters, step count, the two moments of every AdamW parameter and
/// the momentum (and with NorMuon the neurons' second moment) of every Muon matrix.
pub struct Optimizer {
    cfg: AdamWConfig,
    /// Rates of the embeddings and of an untied head relative to the AdamW rate.
    scales: RateScales,
    muon: Option<MuonConfig>,
    tied: bool,
    step: u64,
    moments: BTreeMap<String, Moments>,
    buffers: BTreeMap<String, Tensor<1>>,
    seconds: BTreeMap<String, Tensor<1>>,
}

/// Name, element count and dimensions of every trainable parameter, in module order.
pub fn param_shapes(model: &Gpt) -> Vec<(String, usize, Vec<usize>)> {
    struct V {
        path: Vec<String>,
        out: Vec<(String, usize, Vec<usize>)>,
    }
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let shape = p.shape();
            self.out
                .push((self.path.join("."), shape.num_elements(), shape.to_vec()));
        }
    }
    let mut v = V {
        path: vec![],
        out: vec![],
    };
    model.visit(&mut v);
    v.out
}

/// Global L2 norm of all gradients (one host sync).
pub fn grad_norm(model: &Gpt, grads: &GradientsParams) -> f64 {
    struct SqNorm<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SqNorm<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(p.id) {
                let sq = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + sq,
                    None => sq,
                });
            }
        }
    }
    let mut v = SqNorm { grads, total: None };
    model.visit(&mut v);
    v.total
        .map(|t| f64::from(t.into_scalar::<f32>()).sqrt())
        .unwrap_or(0.0)
}

/// Matrices decay, except the embeddings that are only looked up (positions, value
/// embeddings, an untied `wte`); a tied `wte` is also the head.
fn decays(path: &str, rank: usize, tied: bool) -> bool {
    rank >= 2
        && !path.starts_with("wpe")
        && !path.starts_with("ve.")
        && (tied || !path.starts_with("wte"))
}

impl Optimizer {
    /// A fresh AdamW optimizer (step 0, zero moments created on first use).
    pub fn new(cfg: AdamWConfig, tied_embeddings: bool) -> Self {
        Optimizer {
            cfg,
            scales: RateScales::default(),
            muon: None,
            tied: tied_embeddings,
            step: 0,
            moments: BTreeMap::new(),
            buffers: BTreeMap::new(),
            seconds: BTreeMap::new(),
        }
    }

    /// The same with the embeddings' and the head's rates scaled relative to the others'.
    pub fn with_scales(self, scales: RateScales) -> Self {
        Optimizer { scales, ..self }
    }

    /// The same with Muon for the blocks' matrices ([`crate::muon::blocks`]).
    pub fn with_muon(self, muon: MuonConfig) -> Self {
        Optimizer {
            muon: Some(muon),
            ..self
        }
    }

    fn format(&self) -> &'static str {
        match self.muon {
            Some(m) if m.beta2 > 0.0 => NORMUON_FORMAT,
            Some(_) => MUON_FORMAT,
            None => FORMAT,
        }
    }

    fn is_muon(&self, name: &str, rank: usize) -> bool {
        self.muon.is_some() && blocks(name, rank).is_some()
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every parameter that has a gradient, with learning rate `lr`; gradients
    /// are multiplied by `grad_scale` first (the clipping factor, 1 when not clipping).
    pub fn step(&mut self, model: Gpt, grads: GradientsParams, lr: f64, grad_scale: f64) -> Gpt {
        self.step += 1;
        let t = self.step as i32;
        let mut mapper = Update {
            path: vec![],
            grads,
            opt: self,
            lr,
            grad_scale,
            t,
        };
        model.map(&mut mapper)
    }

    /// The state as SafeTensors bytes: `exp_avg.NAME` and `exp_avg_sq.NAME` (f32, flattened)
    /// per AdamW parameter, `momentum_buffer.NAME` (and with NorMuon
    /// `neuron_second_moment.NAME`) per Muon matrix, the step count in the metadata.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut bufs: Vec<(String, Vec<u8>, usize)> = Vec::new();
        let tensors = self
            .moments
            .iter()
            .flat_map(|(name, mo)| [("exp_avg", name, &mo.m), ("exp_avg_sq", name, &mo.v)])
            .chain(
                self.buffers
                    .iter()
                    .map(|(name, b)| ("momentum_buffer", name, b)),
            )
            .chain(
                self.seconds
                    .iter()
                    .map(|(name, v)| ("neuron_second_moment", name, v)),
            );
        for (prefix, name, t) in tensors {
            let data = t.to_data();
            let v: Vec<f32> = data
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| TrainError::Data(format!("reading optimizer state {name}: {e:?}")))?;
            let n = v.len();
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            bufs.push((format!("{prefix}.{name}"), bytes, n));
        }
        let mut views = Vec::new();
        for (name, bytes, n) in &bufs {
            let view = TensorView::new(Dtype::F32, vec![*n], bytes)
                .map_err(|e| TrainError::Data(format!("optimizer state {name}: {e}")))?;
            views.push((name.clone(), view));
        }
        let meta = std::collections::HashMap::from([
            ("format".to_string(), self.format().to_string()),
            ("version".to_string(), "1".to_string()),
            ("step".to_string(), self.step.to_string()),
        ]);
        safetensors::serialize(views, Some(meta))
            .map_err(|e| TrainError::Data(format!("serialising optimizer state: {e}")))
    }

    /// Restores state saved by [`to_bytes`](Self::to_bytes), checking it against the model's
    /// parameters (`param_shapes`); `origin` names the file in errors.
    pub fn load_bytes(
        &mut self,
        bytes: &[u8],
        params: &[(String, usize, Vec<usize>)],
        device: &Device,
        origin: &std::path::Path,
    ) -> Result<()> {
        let bad = |reason: String| TrainError::Resume {
            path: origin.to_path_buf(),
            reason,
        };
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("damaged optimizer state: {e}")))?;
        let md = meta.metadata().clone().unwrap_or_default();
        let format = self.format();
        let found = md.get("format").map(String::as_str);
        if found != Some(format) || md.get("version").map(String::as_str) != Some("1") {
            let was = match found {
                Some(FORMAT) => " (this state is train.optimizer = \"adamw\")",
                Some(MUON_FORMAT) => " (this state is train.optimizer = \"muon\")",
                Some(NORMUON_FORMAT) => {
                    " (this state is train.optimizer = \"muon\" with train.muon_beta2 > 0)"
                }
                _ => "",
            };
            return Err(bad(format!(
                "not {format} version 1 state (metadata {md:?}); a run's optimizer cannot change when it resumes{was}"
            )));
        }
        let step: u64 = md
            .get("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("metadata has no step count".into()))?;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("damaged optimizer state: {e}")))?;
        let mut moments = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        let mut seconds = BTreeMap::new();
        let mut expected = 0;
        for (name, n, dims) in params {
            let rank = dims.len();
            let get = |prefix: &str, n: usize| -> Result<Tensor<1>> {
                let key = format!("{prefix}.{name}");
                let view = st
                    .tensor(&key)
                    .map_err(|_| bad(format!("no {key}: the state belongs to another model")))?;
                if view.dtype() != Dtype::F32 || view.shape() != [n] {
                    return Err(bad(format!(
                        "{key} has shape {:?} ({:?}), the model needs [{n}] (F32)",
                        view.shape(),
                        view.dtype()
                    )));
                }
                let v: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Ok(Tensor::from_data(TensorData::new(v, [n]), device))
            };
            if self.is_muon(name, rank) {
                buffers.insert(name.clone(), get("momentum_buffer", *n)?);
                expected += 1;
                if format == NORMUON_FORMAT {
                    let matrices = blocks(name, rank).unwrap_or(1);
                    let count = ember_kernels::neurons(dims[0], dims[1], matrices);
                    seconds.insert(name.clone(), get("neuron_second_moment", count)?);
                    expected += 1;
                }
            } else {
                let m = get("exp_avg", *n)?;
                let v = get("exp_avg_sq", *n)?;
                moments.insert(name.clone(), Moments { m, v });
                expected += 2;
            }
        }
        if st.len() != expected {
            return Err(bad(format!(
                "holds {} tensors, the model's {} parameters need {expected}",
                st.len(),
                params.len()
            )));
        }
        self.step = step;
        self.moments = moments;
        self.buffers = buffers;
        self.seconds = seconds;
        Ok(())
    }
}

struct Update<'a> {
    path: Vec<String>,
    grads: GradientsParams,
    opt: &'a mut Optimizer,
    lr: f64,
    grad_scale: f64,
    /// The update's number (1-based), for the bias corrections.
    t: i32,
}

impl Update<'_> {
    /// Muon's update of the matrix `name` (`[rows, cols]`, `blocks` side by side), flattened.
    fn muon<const D: usize>(
        &mut self,
        muon: MuonConfig,
        blocks: usize,
        name: String,
        param: Tensor<D>,
        grad: Tensor<D>,
    ) -> Tensor<1> {
        let dims = param.dims();
        let [rows, cols] = [dims[0], dims[1]];
        let s = muon.scalars(self.t as u64, self.lr, self.grad_scale);
        let buf = self.opt.buffers.remove(&name);
        let second = self.opt.seconds.remove(&name);
        let state = buf.map(|b| (b.reshape([rows, cols]), second));
        let (p, (b, v)) = muon_step(
            param.reshape([rows, cols]),
            grad.reshape([rows, cols]),
            state,
            s,
            blocks,
        );
        self.opt
            .buffers
            .insert(name.clone(), b.reshape([rows * cols]));
        if let Some(v) = v {
            self.opt.seconds.insert(name, v);
        }
        p.reshape([rows * cols])
    }

    /// AdamW's update of the flattened parameter `name` of rank `rank`.
    fn adamw(&mut self, name: String, rank: usize, p: Tensor<1>, grad: Tensor<1>) -> Tensor<1> {
        let c = self.opt.cfg;
        let weight_decay = if decays(&name, rank, self.opt.tied) {
            c.weight_decay
        } else {
            0.0
        };
        let scalars = AdamWScalars::for_step(
            self.t,
            self.lr * self.opt.scales.of(&name),
            [c.beta1, c.beta2],
            c.eps,
            weight_decay,
            self.grad_scale,
        );
        let moments = self.opt.moments.remove(&name).map(|mo| (mo.m, mo.v));
        let (p, m, v) = adamw_step(p, grad, moments, scalars);
        self.opt.moments.insert(name, Moments { m, v });
        p
    }
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let name = self.path.join(".");
        let dims = tensor.dims();
        let n = tensor.shape().num_elements();
        let require_grad = tensor.is_require_grad();
        let p = match (self.opt.muon, blocks(&name, D)) {
            (Some(muon), Some(blocks)) => self.muon(muon, blocks, name, tensor.inner(), grad),
            _ => self.adamw(name, D, tensor.inner().reshape([n]), grad.reshape([n])),
        };
        let mut out = Tensor::from_inner(p.reshape(dims));
        if require_grad {
            out = out.require_grad();
        }
        Param::from_mapped_value(id, out, mapper)
    }
}

/// Whether every parameter is finite (one host sync); used before a checkpoint is written.
pub fn weights_finite(model: &Gpt) -> bool {
    struct V {
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for V {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let s = p.val().inner().abs().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
        }
    }
    let mut v = V { total: None };
    model.visit(&mut v);
    v.total
        .map(|t| t.into_scalar::<f32>().is_finite())
        .unwrap_or(true)
}
