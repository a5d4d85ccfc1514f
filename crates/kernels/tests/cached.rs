use ember_kernels::{CachedShape, KvRows, RopeTable, cached_attention};

fn from0(values: &[f32]) -> Option<RopeTable<'_>> {
    Some(RopeTable { values, first: 0 })
}

fn data(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104729) % 1013) as f32 / 1013.0 - 0.5) * 3.0)
        .collect()
}

/// A rope table `[positions, head_dim, 2]` in Burn's layout: (cos, sin) of position · θᵢ,
/// the same for both elements of a pair.
fn freq(positions: usize, hd: usize) -> Vec<f32> {
    let mut f = Vec::new();
    for p in 0..positions {
        for e in 0..hd {
            let theta = 10000f64.powf(-((e / 2 * 2) as f64) / hd as f64);
            let a = p as f64 * theta;
            f.extend([a.cos() as f32, a.sin() as f32]);
        }
    }
    f
}

/// float64 reference: the whole sequence `qkv [t, 3·width]` at once, rotary positions from 0.
fn reference(qkv: &[f32], t: usize, n_head: usize, hd: usize, f: Option<&[f32]>) -> Vec<f64> {
    let w = n_head * hd;
    let rot = |x: &[f32], pos: usize| -> Vec<f64> {
        let mut out: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        if let Some(f) = f {
            for e in (0..hd).step_by(2) {
                let (a, b) = (x[e] as f64, x[e + 1] as f64);
                let (c, s) = (
                    f[(pos * hd + e) * 2] as f64,
                    f[(pos * hd + e) * 2 + 1] as f64,
                );
                out[e] = a * c - b * s;
                out[e + 1] = b * c + a * s;
            }
        }
        out
    };
    let mut y = vec![0.0; t * w];
    for h in 0..n_head {
        let col = |i: usize, part: usize| &qkv[i * 3 * w + part * w + h * hd..][..hd];
        for i in 0..t {
            let q = rot(col(i, 0), i);
            let s: Vec<f64> = (0..=i)
                .map(|j| {
                    let k = rot(col(j, 1), j);
                    q.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
            for c in 0..hd {
                y[i * w + h * hd + c] = (0..=i)
                    .map(|j| (s[j] - m).exp() / z * col(j, 2)[c] as f64)
                    .sum();
            }
        }
    }
    y
}

/// Runs `qkv [t, 3·width]` through the kernel in calls of `chunks` tokens each.
fn in_steps(
    qkv: &[f32],
    chunks: &[usize],
    n_head: usize,
    hd: usize,
    f: Option<&[f32]>,
) -> (Vec<f32>, KvRows) {
    let w = n_head * hd;
    let mut cache = KvRows::default();
    let mut out = Vec::new();
    let mut at = 0;
    for &new in chunks {
        let mut y = vec![f32::NAN; new * w];
        let shape = CachedShape {
            new,
            n_head,
            head_dim: hd,
        };
        cached_attention(
            shape,
            &qkv[at * 3 * w..(at + new) * 3 * w],
            f.and_then(from0),
            &mut [&mut cache],
            &mut y,
        );
        out.extend(y);
        at += new;
    }
    (out, cache)
}

#[test]
fn matches_f64_reference_with_and_without_rotary_positions() {
    let (n_head, hd, t) = (3, 8, 40);
    let qkv = data(t * 3 * n_head * hd, 1);
    let table = freq(64, hd);
    // Whole (a prompt: products), and in chunks of 4 (query by query).
    for (f, chunks) in [
        (None, vec![t]),
        (Some(table.as_slice()), vec![t]),
        (Some(table.as_slice()), vec![4; 10]),
    ] {
        let (got, cache) = in_steps(&qkv, &chunks, n_head, hd, f);
        let want = reference(&qkv, t, n_head, hd, f);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (*a as f64 - b).abs() < 2e-5 * (1.0 + b.abs()),
                "element {i}: {a} vs {b}"
            );
        }
        assert_eq!(cache.len(n_head * hd), t);
    }
}

#[test]
fn a_prompt_then_single_steps_gives_the_numbers_of_one_call() {
    let (n_head, hd, t) = (4, 16, 37);
    let qkv = data(t * 3 * n_head * hd, 2);
    let table = freq(64, hd);
    // Short chunks run query by query, so any split gives the same numbers bit for bit; a long
    // prompt on an empty cache takes the product-based path (to float rounding).
    let short = in_steps(&qkv, &[5, 5, 5, 5, 5, 5, 5, 2], n_head, hd, Some(&table));
    let mut chunks = vec![3];
    chunks.extend([1; 34]);
    assert_eq!(
        short,
        in_steps(&qkv, &chunks, n_head, hd, Some(&table)),
        "bit for bit"
    );
    let (whole, cache) = in_steps(&qkv, &[t], n_head, hd, Some(&table));
    assert_eq!(cache, short.1, "the same cache");
    for (a, b) in whole.iter().zip(&short.0) {
        assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let mut chunks = vec![30];
    chunks.extend([1; 7]);
    let stepped = in_steps(&qkv, &chunks, n_head, hd, Some(&table));
    assert_eq!(
        stepped.0[..30 * n_head * hd],
        whole[..30 * n_head * hd],
        "the prompt"
    );
    assert_eq!(
        stepped.0[30 * n_head * hd..],
        short.0[30 * n_head * hd..],
        "the steps"
    );
}

#[test]
fn sequences_sharing_a_call_get_what_they_get_alone() {
    let (n_head, hd) = (2, 8);
    let w = n_head * hd;
    let table = freq(64, hd);
    // Three sequences with different cached lengths, then one step each, together and alone.
    let prompts = [5usize, 12, 1];
    let mut together: Vec<KvRows> = Vec::new();
    let mut alone = Vec::new();
    for (s, &len) in prompts.iter().enumerate() {
        let (_, cache) = in_steps(&data(len * 3 * w, 10 + s), &[len], n_head, hd, Some(&table));
        together.push(cache.clone());
        alone.push(cache);
    }
    let step = data(3 * 3 * w, 20);
    let mut y = vec![0.0; 3 * w];
    let before: Vec<KvRows> = together.clone();
    let mut refs: Vec<&mut KvRows> = together.iter_mut().collect();
    let shape = CachedShape {
        new: 1,
        n_head,
        head_dim: hd,
    };
    cached_attention(shape, &step, from0(&table), &mut refs, &mut y);
    // A table that starts at the earliest position used (1) gives the same numbers.
    let mut again = before.clone();
    let mut refs: Vec<&mut KvRows> = again.iter_mut().collect();
    let mut z = vec![0.0; 3 * w];
    let from1 = RopeTable {
        values: &table[hd * 2..],
        first: 1,
    };
    cached_attention(shape, &step, Some(from1), &mut refs, &mut z);
    assert_eq!(y, z);
    for (r, cache) in alone.iter_mut().enumerate() {
        let mut one = vec![0.0; w];
        cached_attention(
            shape,
            &step[r * 3 * w..(r + 1) * 3 * w],
            from0(&table),
            &mut [cache],
            &mut one,
        );
        assert_eq!(one, y[r * w..(r + 1) * w], "sequence {r}");
        assert_eq!(*cache, together[r]);
    }
}

#[test]
fn thread_count_does_not_change_results() {
    let (n_head, hd, t) = (6, 32, 200); // enough work to run in parallel
    let qkv = data(t * 3 * n_head * hd, 3);
    let table = freq(256, hd);
    let on = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        pool.install(|| in_steps(&qkv, &[t], n_head, hd, Some(&table)).0)
    };
    let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(on(1)), bits(on(3)));
}
