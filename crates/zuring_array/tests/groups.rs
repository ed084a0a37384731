//! Groups: zuring lists and opens what zarrs wrote (v3 and v2), and zarrs opens groups zuring
//! created; bad paths and metadata give errors naming them.

use std::sync::Arc;

use zarrs::array::{ArrayBuilder, ArraySubset};
use zarrs::group::GroupBuilder;
use zarrs_filesystem::FilesystemStore;
use zuring_array::{ArrayError, NodeKind, Selection, ZarrGroup};

#[test]
fn groups_written_by_zarrs_list_and_open() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Arc::new(FilesystemStore::new(dir.path()).unwrap());
    let mut root = GroupBuilder::new().build(store.clone(), "/").unwrap();
    root.attributes_mut()
        .insert("title".into(), serde_json::json!("zuring test"));
    root.store_metadata().unwrap();
    GroupBuilder::new()
        .build(store.clone(), "/sub")
        .unwrap()
        .store_metadata()
        .unwrap();
    for (path, n) in [("/t2m", 6i32), ("/sub/deep", 4)] {
        let len = u64::from(n.unsigned_abs());
        let array = ArrayBuilder::new(
            vec![len],
            vec![4],
            zarrs::array::data_type::int32(),
            zarrs::array::FillValue::from(0i32),
        )
        .build(store.clone(), path)
        .unwrap();
        array.store_metadata().unwrap();
        let values: Vec<i32> = (0..n).collect();
        array
            .store_array_subset(&ArraySubset::new_with_shape(vec![len]), values)
            .unwrap();
    }
    // A v2 group with attributes and a v2 array, side by side.
    let old = dir.path().join("old");
    std::fs::create_dir_all(old.join("x")).unwrap();
    std::fs::write(old.join(".zgroup"), r#"{"zarr_format":2}"#).unwrap();
    std::fs::write(old.join(".zattrs"), r#"{"source":"v2"}"#).unwrap();
    std::fs::write(
        old.join("x/.zarray"),
        r#"{"zarr_format":2,"shape":[3],"chunks":[3],"dtype":"|u1","compressor":null,
            "fill_value":7,"order":"C","filters":null}"#,
    )
    .unwrap();

    let group = ZarrGroup::open(dir.path()).unwrap();
    assert_eq!(group.zarr_format(), 3);
    assert_eq!(group.attributes()["title"], "zuring test");
    assert_eq!(
        group.members().unwrap(),
        [
            ("old".to_owned(), NodeKind::Group),
            ("sub".to_owned(), NodeKind::Group),
            ("t2m".to_owned(), NodeKind::Array),
        ]
    );
    let t2m = group.open_array("t2m").unwrap();
    assert_eq!(
        t2m.read::<i32>(&Selection::all(&[6]))
            .unwrap()
            .into_raw_vec_and_offset()
            .0,
        [0, 1, 2, 3, 4, 5]
    );
    let deep = group.open_array("sub/deep").unwrap();
    assert_eq!(
        deep.read::<i32>(&Selection::all(&[4]))
            .unwrap()
            .into_raw_vec_and_offset()
            .0,
        [0, 1, 2, 3]
    );
    let sub = group.open_group("sub").unwrap();
    assert_eq!(
        sub.members().unwrap(),
        [("deep".to_owned(), NodeKind::Array)]
    );
    let v2 = group.open_group("old").unwrap();
    assert_eq!(v2.zarr_format(), 2);
    assert_eq!(v2.attributes()["source"], "v2");
    assert_eq!(v2.members().unwrap(), [("x".to_owned(), NodeKind::Array)]);
    assert_eq!(
        v2.open_array("x")
            .unwrap()
            .read::<u8>(&Selection::all(&[3]))
            .unwrap()
            .into_raw_vec_and_offset()
            .0,
        [7, 7, 7]
    );

    // Errors: an array opened as a group, a missing member, a name leaving the group.
    let err = group.open_group("t2m").unwrap_err();
    assert!(
        matches!(&err, ArrayError::Metadata { .. }) && err.to_string().contains("not \"group\""),
        "{err}"
    );
    assert!(matches!(
        group.open_group("nothing"),
        Err(ArrayError::GroupNotFound { .. })
    ));
    assert!(matches!(
        group.open_array("nothing"),
        Err(ArrayError::NotFound { .. })
    ));
    for bad in ["../t2m", "/etc", "", "sub/../../x"] {
        assert!(
            matches!(group.open_array(bad), Err(ArrayError::Selection { .. })),
            "{bad}"
        );
    }
    std::fs::write(dir.path().join("sub/zarr.json"), b"{not json").unwrap();
    let err = group.open_group("sub").unwrap_err();
    assert!(
        err.to_string().contains("zarr.json is not valid JSON"),
        "{err}"
    );
}

#[test]
fn created_groups_open_in_zarrs() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut attributes = serde_json::Map::new();
    attributes.insert("n".into(), serde_json::json!([1, 2]));
    let group = ZarrGroup::create(dir.path().join("made"), attributes).unwrap();
    assert_eq!(group.attributes()["n"], serde_json::json!([1, 2]));
    assert!(group.members().unwrap().is_empty());
    let store = Arc::new(FilesystemStore::new(dir.path()).unwrap());
    let theirs = zarrs::group::Group::open(store, "/made").unwrap();
    assert_eq!(theirs.attributes()["n"], serde_json::json!([1, 2]));
    // Where a node is already stored, creating another writes nothing.
    let before = std::fs::read(dir.path().join("made/zarr.json")).unwrap();
    let err = ZarrGroup::create(dir.path().join("made"), serde_json::Map::new()).unwrap_err();
    assert!(
        matches!(
            &err,
            ArrayError::NodeExists {
                what: "group",
                file: "zarr.json",
                ..
            }
        ),
        "{err}"
    );
    let meta = r#"{"zarr_format":3,"node_type":"array","shape":[2],"data_type":"uint8",
        "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2]}},
        "chunk_key_encoding":{"name":"default"},"fill_value":0,"codecs":[{"name":"bytes"}]}"#;
    let err = zuring_array::ZarrArray::create(dir.path().join("made"), meta).unwrap_err();
    assert!(
        err.to_string().contains("a Zarr group is already here"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("made/zarr.json")).unwrap(),
        before
    );
    zuring_array::ZarrArray::create(dir.path().join("arr"), meta).unwrap();
    let err = ZarrGroup::create(dir.path().join("arr"), serde_json::Map::new()).unwrap_err();
    assert!(
        matches!(&err, ArrayError::NodeExists { what: "array", .. }),
        "{err}"
    );
}

/// Threads creating one node at once, arrays and groups mixed: one creates it, every other is
/// refused, and the stored document is the one creator's (checking for a node, then writing,
/// let several through: the last document written replaced the others').
#[test]
fn concurrent_creations_of_one_node_leave_one() {
    const THREADS: usize = 8;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for round in 0..20 {
        let path = dir.path().join(format!("node{round}"));
        let barrier = std::sync::Barrier::new(THREADS);
        let results: Vec<(usize, Result<(), ArrayError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (path, barrier) = (&path, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        let created = if t.is_multiple_of(2) {
                            let meta = format!(
                                r#"{{"zarr_format":3,"node_type":"array","shape":[{}],
                                "data_type":"uint8","chunk_grid":{{"name":"regular",
                                "configuration":{{"chunk_shape":[2]}}}},
                                "chunk_key_encoding":{{"name":"default"}},"fill_value":0,
                                "codecs":[{{"name":"bytes"}}]}}"#,
                                t + 1
                            );
                            zuring_array::ZarrArray::create(path, &meta).map(drop)
                        } else {
                            let mut attributes = serde_json::Map::new();
                            attributes.insert("creator".into(), serde_json::json!(t));
                            ZarrGroup::create(path, attributes).map(drop)
                        };
                        (t, created)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for (_, r) in &results {
            if let Err(err) = r {
                assert!(matches!(err, ArrayError::NodeExists { .. }), "{err}");
            }
        }
        let stored: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path.join("zarr.json")).unwrap()).unwrap();
        let t = winners[0];
        if t.is_multiple_of(2) {
            assert_eq!(stored["shape"], serde_json::json!([t + 1]), "round {round}");
        } else {
            assert_eq!(stored["attributes"]["creator"], serde_json::json!(t));
        }
        // Nothing else is left in the directory (no temp files).
        let names: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["zarr.json"], "round {round}");
    }
}

/// Python's `json` (and so zarr-python) writes a string holding a lone UTF-16 surrogate as the
/// escape `\ud800`, which serde_json refuses: such documents open, list and resize, and what
/// zuring writes back keeps the escapes.
#[test]
fn lone_surrogate_escapes_are_read_and_kept() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Arc::new(FilesystemStore::new(dir.path()).unwrap());
    GroupBuilder::new()
        .build(store.clone(), "/")
        .unwrap()
        .store_metadata()
        .unwrap();
    let array = ArrayBuilder::new(
        vec![6],
        vec![4],
        zarrs::array::data_type::uint8(),
        zarrs::array::FillValue::from(0u8),
    )
    .build(store.clone(), "/a")
    .unwrap();
    array.store_metadata().unwrap();
    array
        .store_array_subset(
            &ArraySubset::new_with_shape(vec![6]),
            vec![1u8, 2, 3, 4, 5, 6],
        )
        .unwrap();
    let odd = r#"{"note": "x\ud800y", "pair": "\ud83d\ude00", "text": "\\udc00", "\udfffk": [1]}"#;
    for doc in ["zarr.json", "a/zarr.json"] {
        let path = dir.path().join(doc);
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        value["attributes"] = serde_json::json!("ATTRS");
        let text = value.to_string().replace("\"ATTRS\"", odd);
        std::fs::write(&path, text).unwrap();
    }
    std::fs::create_dir(dir.path().join("not-a-node")).unwrap();

    let group = ZarrGroup::open(dir.path()).unwrap();
    let attributes = group.attributes_json();
    assert!(
        attributes.contains(r#""note":"x\ud800y""#) && attributes.contains(r#""\udfffk":[1]"#),
        "{attributes}"
    );
    assert!(
        attributes.contains("\"pair\":\"\u{1F600}\""),
        "{attributes}"
    );
    assert!(attributes.contains(r#""text":"\\udc00""#), "{attributes}");
    assert_eq!(
        group.members().unwrap(),
        [("a".to_owned(), NodeKind::Array)]
    );

    let a = group.open_array("a").unwrap();
    let read = |a: &zuring_array::ZarrArray| {
        a.read::<u8>(&Selection::all(a.shape()))
            .unwrap()
            .into_raw_vec_and_offset()
            .0
    };
    assert_eq!(read(&a), [1, 2, 3, 4, 5, 6]);
    assert!(a.metadata_json().contains(r#""note": "x\ud800y""#));
    let smaller = a.resize(&[3]).unwrap();
    assert_eq!(read(&smaller), [1, 2, 3]);
    let stored = std::fs::read_to_string(dir.path().join("a/zarr.json")).unwrap();
    assert!(stored.contains(r#""note": "x\ud800y""#), "{stored}");
    assert!(stored.contains(r#""\udfffk": ["#), "{stored}");
    assert_eq!(
        ZarrGroup::open(dir.path())
            .unwrap()
            .open_array("a")
            .unwrap()
            .shape(),
        [3]
    );

    // A member whose document is not JSON is named.
    std::fs::write(dir.path().join("not-a-node/zarr.json"), b"{oops").unwrap();
    let err = group.members().unwrap_err().to_string();
    assert!(
        err.contains("not-a-node") && err.contains("zarr.json is not valid JSON"),
        "{err}"
    );
}
