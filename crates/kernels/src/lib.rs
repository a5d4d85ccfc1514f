//! Fused CPU kernels for the hot spots Burn's CPU backend runs as many separate passes.
//!
//! The first is softmax cross-entropy over the vocabulary: the composed `log_softmax` +
//! `gather` makes about fifteen passes over the `[positions, vocab]` logits per training step
//! (forward and backward) with a scalar `exp`; [`nll_forward`] and [`nll_backward`] make two
//! and one, with an `exp` the compiler vectorises (8 lanes; AVX2 when the CPU has it).
//!
//! The second is GELU, forward and backward, whose `erf` Burn's CPU backend also evaluates one
//! element at a time ([`gelu_forward`], [`gelu_backward`]); ReLU², which Burn composes from
//! five passes forward and backward, is one pass each way ([`relu2_forward`],
//! [`relu2_backward`]).
//!
//! The third is causal self-attention, forward and backward ([`causal_attention_forward`],
//! [`causal_attention_backward`]): per-head `gemm` products limited to the causal part, with
//! the softmax and its gradient one pass per row, instead of Burn's generic composition.
//!
//! The fourth is the AdamW update ([`adamw_update`]): one pass over a parameter, its gradient
//! and moments, in place, instead of a dozen tensor operations.
//!
//! The fifth is layer normalisation, forward and backward ([`layer_norm_forward`],
//! [`layer_norm_backward`]): one pass per row each way instead of Burn's composition.
//!
//! The sixth is the Muon update of a weight matrix ([`muon_update`]): momentum orthogonalised
//! by Newton–Schulz iterations ([`orthogonalize`]) on `gemm`.
//!
//! The seventh is the matrix product with bfloat16 operands and f32 sums ([`matmul_bf16`]),
//! on AMX tiles where the CPU has them (`tdpbf16ps`), else AVX-512 BF16 (`vdpbf16ps`, twice
//! f32's multiply-adds per instruction), for mixed-precision training (`train.precision =
//! "bf16-mixed"`); a portable version gives the AVX-512 tile's bits.
//!
//! Besides the training kernels, [`max_u16_le`] and [`max_u32_le`] find the largest token id in
//! a shard's bytes, the range check run on every shard when it is opened.
//!
//! The kernels work on plain slices so they can be tested and benchmarked without a tensor
//! library; `ember-model` plugs them into Burn as a backend extension.
//!
//! ```
//! use ember_kernels::{nll_backward, nll_forward};
//! // Two positions over a vocabulary of three.
//! let logits = [1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0];
//! let targets = [2u32, 0];
//! let (mut nll, mut lse) = ([0.0f32; 2], [0.0f32; 2]);
//! nll_forward(&logits, 3, &targets, &mut nll, &mut lse);
//! assert!((nll[1] - 3f32.ln()).abs() < 1e-6); // uniform row: -ln(1/3)
//! let mut grad = [0.0f32; 6];
//! nll_backward(&logits, 3, &targets, &lse, &[1.0, 1.0], &mut grad);
//! // d nll / d logits = softmax - one_hot(target)
//! assert!((grad[3] - (1.0 / 3.0 - 1.0)).abs() < 1e-6);
//! ```

/// Defines `fn $name(args)` that runs `$portable` compiled with the x86 features named (a
/// copy called `$fast`) when the CPU has them all (checked at run time), and as plain code
/// otherwise. `$portable` must be `#[inline(always)]` so its body is compiled inside the copy.
macro_rules! with_features {
    ([$($feature:tt),+] $(#[$m:meta])* $vis:vis fn $name:ident / $fast:ident ($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $portable:ident) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if $(std::is_x86_feature_detected!($feature))&&+ {
                // SAFETY: the CPU has every feature the copy is compiled for (checked on the
                // line above); it only differs from the portable function in the instructions
                // the compiler chose (`mul_add` rounds once either way).
                #[allow(unsafe_code)]
                return unsafe { $fast($($arg),*) };
            }
            $portable($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        $(#[target_feature(enable = $feature)])+
        fn $fast($($arg: $ty),*) $(-> $ret)? {
            $portable($($arg),*)
        }
    };
}

/// [`with_features!`] with AVX2, and before it AVX-512 F where the CPU has it (a module
/// `$fast` holds both copies). The kernels it wraps are element-wise, or reduce in eight
/// fixed lanes (`lanes`), with no fused multiply-add, so sixteen-lane vectors change no bit:
/// each kernel's test compares the dispatched copy with the portable body.
macro_rules! with_avx2 {
    ($(#[$m:meta])* $vis:vis fn $name:ident / $fast:ident ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $portable:ident) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512 F (checked on the line above), which the
                    // copy is compiled for; it differs from the portable function only in
                    // the instructions the compiler chose.
                    #[allow(unsafe_code)]
                    return unsafe { $fast::avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: as above, with AVX2.
                    #[allow(unsafe_code)]
                    return unsafe { $fast::avx2($($arg),*) };
                }
            }
            $portable($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        mod $fast {
            #[allow(unused_imports)]
            use super::*;

            #[target_feature(enable = "avx512f")]
            pub(super) fn avx512($($arg: $ty),*) $(-> $ret)? {
                $portable($($arg),*)
            }

            #[target_feature(enable = "avx2")]
            pub(super) fn avx2($($arg: $ty),*) $(-> $ret)? {
                $portable($($arg),*)
            }
        }
    };
}

/// [`with_features!`] with AVX2 and FMA, for kernels whose arithmetic is fused multiply-adds
/// (`f32::mul_add`). Without FMA the portable body is exact but slow on x86 (a library call
/// per `mul_add`); x86 CPUs with AVX2 but no FMA are not known to exist.
macro_rules! with_fma {
    ($($t:tt)*) => { with_features!(["avx2", "fma"] $($t)*); };
}

mod adamw;
mod attention;
mod bf16;
mod cached;
mod exp;
mod gelu;
mod heads;
mod ids;
mod lanes;
mod layer_norm;
mod matmul;
mod muon;
mod relu2;
mod rows;
mod softmax_xent;

pub use adamw::{AdamWScalars, adamw_update};
pub use attention::{AttnShape, causal_attention_backward, causal_attention_forward};
pub use bf16::{
    Operand, Tile, amx_available, bf16_available, from_bf16, matmul_bf16, matmul_bf16_on,
    matmul_bf16_portable, to_bf16,
};
pub use cached::{CachedShape, KvRows, RopeTable, cached_attention};
pub use exp::{exp, exp_slice};
pub use gelu::{erf, gelu_backward, gelu_forward};
pub use heads::{HeadLayout, heads_to_rows, rope_in_place, rows_to_heads};
pub use ids::{max_u16_le, max_u32_le};
pub use layer_norm::{layer_norm_backward, layer_norm_forward};
pub use muon::{
    MuonScalars, NS_COEFFICIENTS, NS_STEPS, Orthogonalizer, POLAR_EXPRESS_COEFFICIENTS,
    muon_update, neurons, orthogonalize,
};
pub use relu2::{relu2_backward, relu2_forward};
pub use rows::{MAX_ROWS, rows_times, rows_times_t};
pub use softmax_xent::{
    nll_backward, nll_backward_in_place, nll_forward, softcap_in_place,
    softcap_nll_backward_in_place,
};
