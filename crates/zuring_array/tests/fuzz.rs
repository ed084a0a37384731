//! Bounded fuzzing with arbitrary bytes (proptest): the shard-index decoder, the metadata
//! checks and array opening never panic, and every accepted index is consistent with its file.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use zarrs::array::{CodecChain, CodecOptions};
use zuring_array::{ArrayError, IndexLayout, IndexLocation, ShardIndex, ZarrArray};

fn layout(crc: bool) -> IndexLayout {
    let codecs = if crc {
        r#"[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}]"#
    } else {
        r#"[{"name":"bytes","configuration":{"endian":"little"}}]"#
    };
    IndexLayout {
        codecs: Arc::new(
            CodecChain::from_metadata(&serde_json::from_str::<Vec<_>>(codecs).unwrap()).unwrap(),
        ),
        location: IndexLocation::End,
        encoded_size: 16 * 4 + if crc { 4 } else { 0 },
        chunks_per_shard: vec![2, 2],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn shard_index_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..80), file_size in any::<u64>(), crc in any::<bool>()) {
        let l = layout(crc);
        match ShardIndex::decode(Path::new("s"), &bytes, &l, file_size, &CodecOptions::default()) {
            Ok(index) => {
                for i in 0..index.len() {
                    if let Some((offset, nbytes)) = index.chunk(i) {
                        prop_assert!(offset.checked_add(nbytes).is_some_and(|end| end <= file_size));
                    }
                }
            }
            Err(ArrayError::CorruptShardIndex { .. } | ArrayError::UnreadableShardIndex { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn structured_index_entries_are_validated(entries in prop::collection::vec(prop_oneof![Just(u64::MAX), 0u64..200, any::<u64>()], 8), file_size in 0u64..300) {
        let raw: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
        let result = ShardIndex::decode(Path::new("s"), &raw, &layout(false), file_size, &CodecOptions::default());
        let valid = entries.chunks(2).all(|p| (p[0] == u64::MAX && p[1] == u64::MAX) || (p[0] != u64::MAX && p[1] != u64::MAX && p[0].checked_add(p[1]).is_some_and(|e| e <= file_size)));
        prop_assert_eq!(result.is_ok(), valid);
    }

    #[test]
    fn opening_arbitrary_metadata_never_panics(text in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        (0usize..8, any::<i64>()).prop_map(|(field, v)| {
            let mut m: serde_json::Value = serde_json::from_str(r#"{"zarr_format":3,"node_type":"array","shape":[4,4],"data_type":"uint16",
                "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2,2]}},"chunk_key_encoding":{"name":"default"},
                "fill_value":0,"codecs":[{"name":"bytes","configuration":{"endian":"little"}}]}"#).unwrap();
            let keys = ["zarr_format", "node_type", "shape", "data_type", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs"];
            m[keys[field]] = serde_json::json!(v);
            m.to_string()
        }),
    ]) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("zarr.json"), &text).unwrap();
        if let Ok(array) = ZarrArray::open(dir.path()) {
            // Whatever opened must read (all fill: no chunks) without panicking.
            let _ = array.read_bytes(&zuring_array::Selection::all(array.shape()));
        }
    }
}
