//! The largest id in a shard's bytes, against a one-at-a-time reference.

use ember_kernels::{max_u16_le, max_u32_le};
use proptest::prelude::*;

proptest! {
    #[test]
    fn max_of_u16_ids_equals_the_reference(ids in prop::collection::vec(any::<u16>(), 0..300), extra in 0usize..2) {
        let mut bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        bytes.extend(std::iter::repeat_n(0xffu8, extra)); // a trailing odd byte is not an id
        prop_assert_eq!(max_u16_le(&bytes), ids.iter().copied().max().map(u32::from));
    }

    #[test]
    fn max_of_u32_ids_equals_the_reference(ids in prop::collection::vec(any::<u32>(), 0..200), extra in 0usize..4) {
        let mut bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        bytes.extend(std::iter::repeat_n(0xffu8, extra));
        prop_assert_eq!(max_u32_le(&bytes), ids.iter().copied().max());
    }
}
