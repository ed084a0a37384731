//! The Rust engine reads every conformance fixture (written by zarr-python, zarrs-python and
//! tensorstore; see fixtures/generate.py) and returns exactly its expected values.

use std::path::{Path, PathBuf};

use zuring_array::{Selection, ZarrArray};

/// A minimal `.npy` (version 1/2) reader: dtype descr, shape, raw data.
fn read_npy(path: &Path) -> (String, Vec<u64>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    let descr = header
        .split("'descr':")
        .nth(1)
        .unwrap()
        .split('\'')
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(header.contains("'fortran_order': False"));
    let shape_text = header.split("'shape':").nth(1).unwrap();
    let inner = &shape_text[shape_text.find('(').unwrap() + 1..shape_text.find(')').unwrap()];
    let shape = inner
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    (descr, shape, bytes[start + header_len..].to_vec())
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/data");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("case.json").exists())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn engine_reads_every_fixture() {
    let cases = fixtures();
    assert!(
        cases.len() > 50,
        "fixtures missing: run fixtures/generate.py"
    );
    for case in cases {
        let info: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("case.json")).unwrap()).unwrap();
        let array_dir = case.join(info["array"].as_str().unwrap());
        let (descr, shape, mut expected) = read_npy(&case.join("expected.npy"));
        let array =
            ZarrArray::open(&array_dir).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        assert_eq!(array.shape(), &shape[..], "{}", case.display());
        let got = array
            .read_bytes(&Selection::all(&shape))
            .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        // Expected values are stored with numpy's byte order; zuring returns native order.
        let size = array.element_size();
        let swap = if cfg!(target_endian = "little") {
            descr.starts_with('>')
        } else {
            descr.starts_with('<')
        };
        if swap {
            // Complex numbers swap per component.
            let unit = if descr[1..].starts_with('c') {
                size / 2
            } else {
                size
            };
            for element in expected.chunks_exact_mut(unit) {
                element.reverse();
            }
        }
        assert_eq!(got, expected, "{}", case.display());
    }
}
