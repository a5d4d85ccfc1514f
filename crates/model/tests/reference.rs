//! Reference test (in the spirit of llm.c's test_gpt2): Ember's GPT with fixed weights gives the
//! logits and losses of an independent NumPy GPT-2 (fixtures/make_reference.py) to 1e-4.

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use ember_model::{Gpt, GptConfig, masked_loss};
use serde_json::Value;

use crate::common::{cpu, host, max_diff};

fn fixture() -> (Value, Vec<u8>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let json = std::fs::read_to_string(dir.join("reference.json"))
        .unwrap_or_else(|e| panic!("reference.json: {e}"));
    let weights = std::fs::read(dir.join("reference.safetensors"))
        .unwrap_or_else(|e| panic!("reference.safetensors: {e}"));
    (
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}")),
        weights,
    )
}

/// A JSON array of numbers as f32.
fn floats_of(v: &Value) -> Vec<f32> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .map(|x| x as f32)
        .collect()
}

/// A JSON matrix as (row-major values, [rows, cols]).
fn matrix(v: &Value) -> (Vec<f64>, [usize; 2]) {
    let rows = v.as_array().map(|r| r.len()).unwrap_or(0);
    let flat: Vec<f64> = v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r.as_array().into_iter().flatten())
        .filter_map(Value::as_f64)
        .collect();
    let cols = flat.len() / rows.max(1);
    (flat, [rows, cols])
}

fn ints(v: &Value, device: &Device) -> Tensor<2, Int> {
    let (flat, shape) = matrix(v);
    Tensor::from_data(
        TensorData::new(flat.iter().map(|&x| x as i32).collect::<Vec<_>>(), shape),
        device,
    )
}

fn floats(v: &Value, device: &Device) -> Tensor<2> {
    let (flat, shape) = matrix(v);
    Tensor::from_data(
        TensorData::new(flat.iter().map(|&x| x as f32).collect::<Vec<_>>(), shape),
        device,
    )
}

/// The fixture's model shape (GPT-2 defaults otherwise).
fn config_of(fx: &Value) -> GptConfig {
    let c = &fx["config"];
    let n = |k: &str| c[k].as_u64().unwrap_or(0) as usize;
    GptConfig::new(
        n("vocab_size"),
        n("n_layer"),
        n("n_head"),
        n("n_embd"),
        n("block_size"),
    )
}

#[test]
fn logits_and_losses_match_numpy_gpt2() {
    let (fx, weights) = fixture();
    let cfg = config_of(&fx);
    let device = cpu(0);
    let mut model = cfg.init(&device);
    let applied = model
        .load_from(&mut SafetensorsStore::from_bytes(Some(weights)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        applied.missing.is_empty() && applied.unused.is_empty(),
        "{applied:?}"
    );
    let tokens = ints(&fx["tokens"], &device);
    let targets = ints(&fx["targets"], &device);
    let mask = floats(&fx["mask"], &device);
    let logits = model.forward(tokens);
    let want = floats_of(&fx["logits"]);
    let got = host(logits.clone());
    let d = max_diff(&got, &want);
    assert!(d < 1e-4, "logits differ from NumPy by {d}");
    let ones = Tensor::ones(mask.dims(), &device);
    let loss: f32 = masked_loss(logits.clone(), targets.clone(), ones).into_scalar();
    let masked: f32 = masked_loss(logits, targets, mask).into_scalar();
    assert!(
        (loss - fx["loss"].as_f64().unwrap_or(0.0) as f32).abs() < 1e-4,
        "loss {loss} vs {}",
        fx["loss"]
    );
    assert!(
        (masked - fx["masked_loss"].as_f64().unwrap_or(0.0) as f32).abs() < 1e-4,
        "masked loss {masked} vs {}",
        fx["masked_loss"]
    );
}

/// `ember attention`'s weights against NumPy's, layer by layer, with learned positions and with
/// rotary ones (the same weights, `wpe` unused); the rotary model's logits too.
#[test]
fn attention_weights_match_numpy_with_learned_and_rotary_positions() {
    let (fx, weights) = fixture();
    let base = config_of(&fx);
    for (cfg, logits_key, maps_key) in [
        (base.clone(), "logits", "attention"),
        (
            base.clone().with_positions(ember_model::Positions::Rope),
            "rope_logits",
            "rope_attention",
        ),
    ] {
        let device = cpu(0);
        let mut model = cfg.init(&device);
        let mut store = SafetensorsStore::from_bytes(Some(weights.clone())).allow_partial(true);
        let applied = model
            .load_from(&mut store)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(applied.missing.is_empty(), "{applied:?}");
        let (logits, maps) = model.forward_with_attention(ints(&fx["tokens"], &device));
        let d = max_diff(&host(logits), &floats_of(&fx[logits_key]));
        assert!(d < 1e-4, "{maps_key}: logits differ from NumPy by {d}");
        let want = fx[maps_key].as_array().cloned().unwrap_or_default();
        assert_eq!(maps.len(), want.len());
        for (l, (m, w)) in maps.into_iter().zip(&want).enumerate() {
            let d = max_diff(&host(m), &floats_of(w));
            assert!(
                d < 1e-5,
                "{maps_key} layer {l}: weights differ from NumPy by {d}"
            );
        }
    }
}

/// The ReLU² MLP (`mlp = "relu2"`) against NumPy, same weights.
#[test]
fn relu2_logits_match_numpy() {
    let (fx, weights) = fixture();
    let cfg = config_of(&fx).with_mlp(ember_model::MlpKind::Relu2);
    let device = cpu(0);
    let mut model = cfg.init(&device);
    model
        .load_from(&mut SafetensorsStore::from_bytes(Some(weights)))
        .unwrap_or_else(|e| panic!("{e}"));
    let got = host(model.forward(ints(&fx["tokens"], &device)));
    let want = floats_of(&fx["relu2_logits"]);
    let d = max_diff(&got, &want);
    assert!(d < 1e-4, "relu2 logits differ from NumPy by {d}");
}

/// The fixture's weights in a model with rotary positions, QK-norm and logits capped at 2.
fn capped_model() -> (Value, GptConfig, ember_model::Gpt, Device) {
    let (fx, weights) = fixture();
    let cfg = config_of(&fx)
        .with_positions(ember_model::Positions::Rope)
        .with_qk_norm(true)
        .with_logit_softcap(2.0);
    let device = cpu(0);
    let mut model = cfg.init(&device);
    model
        .load_from(&mut SafetensorsStore::from_bytes(Some(weights)))
        .unwrap_or_else(|e| panic!("{e}"));
    (fx, cfg, model, device)
}

/// QK-norm (`qk_norm = true`, applied before the rotary embedding, NumPy after it) and capped
/// logits (`logit_softcap = 2`) with rotary positions against NumPy, same weights; whole
/// sequences, and through the KV cache a prompt then one token at a time.
#[test]
fn qk_norm_and_softcap_logits_match_numpy() {
    let (fx, cfg, model, device) = capped_model();
    let tokens = ints(&fx["tokens"], &device);
    let want = floats_of(&fx["qknorm_softcap_logits"]);
    let got = host(model.forward(tokens.clone()));
    let d = max_diff(&got, &want);
    assert!(d < 1e-4, "logits differ from NumPy by {d}");
    assert!(got.iter().all(|x| x.abs() <= 2.0), "logits are capped at 2");
    // Row 0 through the cache: a prompt of t - 3 tokens, then three single tokens.
    let t = tokens.dims()[1];
    let v = cfg.vocab_size;
    let row = tokens.slice(s![0..1, ..]);
    let mut cache = ember_model::KvCache::new(cfg.n_layer);
    let mut got = host(model.forward_cached(row.clone().slice(s![.., 0..t - 3]), &mut cache));
    for i in t - 3..t {
        got.extend(host(
            model.forward_cached(row.clone().slice(s![.., i..i + 1]), &mut cache),
        ));
    }
    let d = max_diff(&got, &want[..t * v]);
    assert!(d < 1e-4, "cached logits differ from NumPy by {d}");
}

/// The loss of a soft-capped model (the cap applied inside the loss operation) is the mean
/// negative log-likelihood of NumPy's capped logits.
#[test]
fn softcap_loss_matches_the_numpy_logits() {
    let (fx, cfg, model, device) = capped_model();
    let (x, y) = (ints(&fx["tokens"], &device), ints(&fx["targets"], &device));
    let [b, t] = x.dims();
    let (sum, count) = model.nll_sum(x, y, Tensor::ones([b, t], &device));
    let got = host(sum)[0] as f64 / host(count)[0] as f64;
    let logits = floats_of(&fx["qknorm_softcap_logits"]);
    let (targets, _) = matrix(&fx["targets"]);
    let v = cfg.vocab_size;
    let want: f64 = logits
        .chunks(v)
        .zip(&targets)
        .map(|(row, &tg)| {
            let m = row.iter().fold(f64::NEG_INFINITY, |a, &z| a.max(z as f64));
            let lse = m + row.iter().map(|&z| (z as f64 - m).exp()).sum::<f64>().ln();
            lse - row[tg as usize] as f64
        })
        .sum::<f64>()
        / targets.len() as f64;
    assert!((got - want).abs() < 1e-5, "loss {got} vs {want}");
}

/// Value embeddings (`value_embeds = 1`: with two blocks the one table feeds both) with rotary
/// positions, QK-norm, ReLU² and capped logits against NumPy: whole sequences; through the
/// KV cache, a prompt then one token at a time; and both rows decoded together
/// (`Gpt::decode_step`), each continuing its own cache.
#[test]
fn value_embeddings_match_numpy() {
    let (fx, weights) = fixture();
    let (cfg, model) = value_embedded(&fx, weights, false);
    every_path_matches(&fx, &cfg, &model, "value_embed_logits");
}

/// The same model with residual scalars (`residual_scalars = true`: block i reads
/// `r[i]·x + z[i]·x0`), the scalars set to NumPy's draws, on the same three paths.
#[test]
fn residual_scalars_match_numpy() {
    let (fx, weights) = fixture();
    let (cfg, mut model) = value_embedded(&fx, weights, true);
    let device = cpu(0);
    let param = |key: &str| {
        let v = floats_of(&fx[key]);
        let n = v.len();
        burn::module::Param::from_tensor(Tensor::<1>::from_data(TensorData::new(v, [n]), &device))
    };
    model.resid_lambdas = Some(param("resid_lambdas"));
    model.x0_lambdas = Some(param("x0_lambdas"));
    every_path_matches(&fx, &cfg, &model, "residual_scalar_logits");
}

/// The fixture's weights with rotary positions, QK-norm, logits capped at 2, ReLU² and the
/// fixture's value-embedding table (and residual scalars when `scalars`, still at their init).
fn value_embedded(fx: &Value, weights: Vec<u8>, scalars: bool) -> (GptConfig, Gpt) {
    let cfg = config_of(fx)
        .with_positions(ember_model::Positions::Rope)
        .with_qk_norm(true)
        .with_logit_softcap(2.0)
        .with_mlp(ember_model::MlpKind::Relu2)
        .with_value_embeds(1)
        .with_residual_scalars(scalars);
    let device = cpu(0);
    let mut model = cfg.init(&device);
    model
        .load_from(&mut SafetensorsStore::from_bytes(Some(weights)).allow_partial(true))
        .unwrap_or_else(|e| panic!("{e}"));
    let (v, d) = (cfg.vocab_size, cfg.n_embd);
    let table = Tensor::from_data(
        TensorData::new(floats_of(&fx["value_embedding"]), [v, d]),
        &device,
    );
    model.ve[0].weight = burn::module::Param::from_tensor(table);
    (cfg, model)
}

/// `model`'s logits equal the fixture's `key` through the whole-sequence forward, the KV cache
/// (a prompt, then one token at a time) and `decode_step` (both rows together).
fn every_path_matches(fx: &Value, cfg: &GptConfig, model: &Gpt, key: &str) {
    let device = cpu(0);
    let v = cfg.vocab_size;
    let tokens = ints(&fx["tokens"], &device);
    let want = floats_of(&fx[key]);
    let d = max_diff(&host(model.forward(tokens.clone())), &want);
    assert!(d < 1e-4, "logits differ from NumPy by {d}");

    let [b, t] = tokens.dims();
    let mut caches: Vec<ember_model::KvCache> = (0..b)
        .map(|_| ember_model::KvCache::new(cfg.n_layer))
        .collect();
    let prompt = t - 3;
    for (i, cache) in caches.iter_mut().enumerate() {
        let row = tokens.clone().slice(s![i..i + 1, 0..prompt]);
        let got = host(model.forward_cached(row, cache));
        let d = max_diff(&got, &want[i * t * v..(i * t + prompt) * v]);
        assert!(
            d < 1e-4,
            "row {i}: cached prompt logits differ from NumPy by {d}"
        );
    }
    let (ids, _) = matrix(&fx["tokens"]);
    for pos in prompt..t {
        let step: Vec<u32> = (0..b).map(|i| ids[i * t + pos] as u32).collect();
        let mut refs: Vec<&mut ember_model::KvCache> = caches.iter_mut().collect();
        let got = host(model.decode_step(&step, &mut refs));
        for i in 0..b {
            let at = (i * t + pos) * v;
            let d = max_diff(&got[i * v..(i + 1) * v], &want[at..at + v]);
            assert!(
                d < 1e-4,
                "row {i}, position {pos}: decoded logits differ by {d}"
            );
        }
    }
}
