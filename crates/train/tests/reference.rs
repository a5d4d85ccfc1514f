//! Ember's optimizer with Muon against an independent NumPy implementation of PyTorch's
//! `torch.optim.Muon` and `torch.optim.AdamW` (fixtures/make_muon_reference.py): a tiny GPT's
//! weights after 20 updates from the same formula weights and gradients.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use ember_model::{Gpt, GptConfig};
use ember_train::muon::MuonConfig;
use ember_train::optim::{AdamWConfig, Optimizer, param_shapes};
use serde_json::Value;

fn fixture() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/muon_reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The script's formulas: parameter number `k`'s weights and its gradient at update `t`.
fn init(k: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.05 * (0.37 * i as f64 + 1.1 * k as f64).sin()) as f32)
        .collect()
}

fn grad(k: usize, t: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((1.0 + 0.1 * k as f64) * (0.29 * i as f64 + 0.7 * k as f64 + 1.3 * t as f64).cos())
                as f32
        })
        .collect()
}

/// Replaces every parameter by its formula weights.
struct SetWeights {
    path: Vec<String>,
    names: Vec<String>,
}

impl ModuleMapper for SetWeights {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let k = self
            .names
            .iter()
            .position(|n| *n == self.path.join("."))
            .unwrap();
        let shape = tensor.shape();
        let v = init(k, shape.num_elements());
        let t =
            Tensor::<1>::from_data(TensorData::new(v, [shape.num_elements()]), &tensor.device())
                .reshape(tensor.dims());
        Param::from_mapped_value(id, t, mapper)
    }
}

/// The formula gradients of update `t`, keyed by parameter id.
struct Grads {
    path: Vec<String>,
    names: Vec<String>,
    t: usize,
    out: GradientsParams,
}

impl ModuleVisitor for Grads {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let k = self
            .names
            .iter()
            .position(|n| *n == self.path.join("."))
            .unwrap();
        let val = p.val();
        let n = val.shape().num_elements();
        // Gradients live on the plain device, as the backward pass hands them over.
        let g = Tensor::<1>::from_data(TensorData::new(grad(k, self.t, n), [n]), &Device::flex())
            .reshape(val.dims());
        let id: ParamId = p.id;
        self.out.register::<D>(id, g);
    }
}

fn values(model: &Gpt) -> Vec<(String, Vec<f32>)> {
    struct V {
        path: Vec<String>,
        out: Vec<(String, Vec<f32>)>,
    }
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let v = p.val().to_data().try_to_vec::<f32>().unwrap();
            self.out.push((self.path.join("."), v));
        }
    }
    let mut v = V {
        path: vec![],
        out: vec![],
    };
    model.visit(&mut v);
    v.out
}

#[test]
fn twenty_muon_and_adamw_updates_match_numpy_torch_semantics() {
    let fx = fixture();
    let c = &fx["config"];
    let u = |v: &Value| v.as_u64().unwrap() as usize;
    let f = |v: &Value| v.as_f64().unwrap();
    // The model on the autodiff device, as the training loop holds it.
    let device = Device::flex().autodiff();
    let cfg = GptConfig::new(
        u(&c["vocab_size"]),
        u(&c["n_layer"]),
        2,
        u(&c["n_embd"]),
        u(&c["block_size"]),
    )
    .with_bias(false);
    // Initialised under the generator's lock: its draws must not land inside another test's
    // seeded section (`runs_trained_at_once_in_threads_get_the_weights_of_a_run_alone`).
    let model = ember_model::with_seed(&device, 0, || cfg.init(&device).drawn());
    // The same parameters, in the same order, as the script's.
    let names: Vec<String> = fx["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let shapes: Vec<(String, usize)> = param_shapes(&model)
        .into_iter()
        .map(|(n, len, _)| (n, len))
        .collect();
    let want: Vec<(String, usize)> = fx["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n: usize = p["shape"].as_array().unwrap().iter().map(u).product();
            (p["name"].as_str().unwrap().to_string(), n)
        })
        .collect();
    assert_eq!(
        shapes, want,
        "the model's parameters differ from the script's"
    );
    let mut model = model.map(&mut SetWeights {
        path: vec![],
        names: names.clone(),
    });

    let (m, a) = (&c["muon"], &c["adamw"]);
    let adamw_lr = f(&a["lr"]);
    let mut optim = Optimizer::new(
        AdamWConfig {
            beta1: f(&a["betas"][0]),
            beta2: f(&a["betas"][1]),
            eps: f(&a["eps"]),
            weight_decay: f(&a["wd"]),
        },
        true,
    )
    .with_muon(MuonConfig {
        lr: f(&m["lr"]),
        adamw_lr,
        momentum: f(&m["momentum"]),
        momentum_start: f(&m["momentum_start"]),
        momentum_warmup: m["warmup"].as_u64().unwrap(),
        weight_decay: f(&m["wd"]),
        bf16_products: false,
        beta2: 0.0,
        orthogonalizer: ember_kernels::Orthogonalizer::Quintic,
    });
    for t in 0..u(&c["steps"]) {
        let mut g = Grads {
            path: vec![],
            names: names.clone(),
            t,
            out: GradientsParams::new(),
        };
        model.visit(&mut g);
        // The script's schedule: a falling rate, and a clipping factor on every third update.
        let lr = adamw_lr * (1.0 - t as f64 / 40.0);
        let scale = if t % 3 == 1 { 0.5 } else { 1.0 };
        model = optim.step(model, g.out, lr, scale);
    }

    let mut worst = (0.0f64, String::new());
    for (name, got) in values(&model) {
        let want: Vec<f64> = fx["final"][&name]
            .as_array()
            .unwrap()
            .iter()
            .map(f)
            .collect();
        assert_eq!(got.len(), want.len(), "{name}");
        for (a, b) in got.iter().zip(&want) {
            let d = (f64::from(*a) - b).abs();
            if d > worst.0 {
                worst = (d, name.clone());
            }
        }
    }
    let tol = 1e-5;
    assert!(
        worst.0 < tol,
        "largest difference {} in {}",
        worst.0,
        worst.1
    );
    eprintln!("largest difference from NumPy: {} in {}", worst.0, worst.1);
    // The updates moved the weights far beyond that tolerance.
    let qkv = "h.0.attn.c_attn.weight";
    let k = names.iter().position(|n| n == qkv).unwrap();
    let first: Vec<f64> = init(k, want[k].1).iter().map(|x| f64::from(*x)).collect();
    let now: Vec<f64> = fx["final"][qkv].as_array().unwrap().iter().map(f).collect();
    let dist = first
        .iter()
        .zip(&now)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(dist > 100.0 * tol, "{qkv} moved only {dist}");
}
