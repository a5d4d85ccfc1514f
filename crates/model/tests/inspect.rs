//! Embedding neighbours against embeddings whose answer is known.

use burn::module::Param;
use burn::prelude::*;
use ember_model::GptConfig;
use ember_model::inspect::neighbors;

use crate::common::cpu;

#[test]
fn neighbours_are_by_cosine_similarity_of_the_mean_embedding() {
    let device = cpu(1);
    let mut model = GptConfig::new(6, 1, 1, 2, 4).init(&device);
    // Rows: 0 → (1, 0), 1 → (2, 0) (same direction), 2 → (0, 1), 3 → (-1, 0), 4 → (1, 1), 5 → (0, -3).
    let rows = [
        1.0, 0.0, 2.0, 0.0, 0.0, 1.0, -1.0, 0.0, 1.0, 1.0, 0.0, -3.0f32,
    ];
    model.wte.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(rows.to_vec(), [6, 2]),
        &device,
    ));
    let near = neighbors(&model, &[0], 5, &[]).unwrap();
    let ids: Vec<u32> = near.iter().map(|n| n.0).collect();
    assert_eq!(ids, vec![1, 4, 2, 5, 3], "{near:?}");
    assert!((near[0].1 - 1.0).abs() < 1e-6 && (near[4].1 + 1.0).abs() < 1e-6);
    assert!((near[1].1 - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    // A word of two tokens is the mean of their embeddings: (1, 0) and (0, 1) → along (1, 1).
    let near = neighbors(&model, &[0, 2], 1, &[]).unwrap();
    assert_eq!(near[0].0, 4);
    // Skipped ids (special tokens) never appear; bad ids are errors, not panics.
    assert!(
        neighbors(&model, &[0], 5, &[1])
            .unwrap()
            .iter()
            .all(|n| n.0 != 1)
    );
    assert!(neighbors(&model, &[9], 5, &[]).is_err());
    assert!(neighbors(&model, &[], 5, &[]).is_err());
}

/// The attention weights come from the model's own layers: the logits computed alongside them
/// equal the plain forward pass's, for every position scheme (rotary included); each row is a
/// distribution over the current and earlier positions only.
#[test]
fn attention_weights_are_the_models_own_causal_distributions() {
    use crate::common::{host, max_diff, tokens, variants};
    for cfg in variants(40) {
        let device = cpu(3);
        let model = crate::common::model(&cfg, &device);
        let ids: Vec<u32> = (0..12).map(|i| (i * 7 + 3) % 40).collect();
        let plain = host(model.forward(tokens(&ids, &device)));
        let (logits, maps) = model.forward_with_attention(tokens(&ids, &device));
        let d = max_diff(&plain, &host(logits));
        assert!(d < 1e-5, "{:?}: logits differ by {d}", cfg.positions);
        assert_eq!(maps.len(), cfg.n_layer);
        for m in maps {
            assert_eq!(m.dims(), [1, cfg.n_head, 12, 12]);
            let w = host(m);
            for row in w.chunks(12).enumerate() {
                let (r, row) = row;
                let q = r % 12;
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
                assert!(
                    row[q + 1..].iter().all(|&x| x == 0.0),
                    "attends to a later position"
                );
            }
        }
    }
}
