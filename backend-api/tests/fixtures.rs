//! The committed fixtures of `testdata/` (at the repository's root) that this crate's formats
//! own: each is decoded, and each writer's output for the fixture's fixed input must equal
//! the committed bytes, so a writer cannot change a format without a version bump.
//!
//! Regenerate with `CORNERSTONE_REGENERATE_FIXTURES=1 cargo test -p cornerstone-backend-api
//! --test fixtures` (then review the diff: a changed fixture of a released version is a
//! format change and needs a new version).
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Read;
use std::path::PathBuf;

/// The path of a file in `testdata/`.
fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("testdata")
        .join(name)
}

fn regenerate() -> bool {
    std::env::var_os("CORNERSTONE_REGENERATE_FIXTURES").is_some()
}

/// 1 GiB of zeros as one zstd frame: without its size (as a streaming writer makes it), and
/// with its size recorded, for the hostile-input tests and the fuzz corpora. Generated only
/// when regenerating (zstd's output may differ between zstd releases); the committed files are
/// checked to be what their names say.
#[test]
fn decompression_bombs() {
    for (name, pledged) in [
        ("hostile/zeros-1gib.zst", None),
        ("hostile/zeros-1gib-sized.zst", Some(1u64 << 30)),
    ] {
        if regenerate() {
            let mut enc = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
            enc.set_pledged_src_size(pledged).unwrap();
            enc.include_contentsize(pledged.is_some()).unwrap();
            std::io::copy(&mut std::io::repeat(0).take(1 << 30), &mut enc).unwrap();
            std::fs::write(testdata(name), enc.finish().unwrap()).unwrap();
        }
        let bomb = std::fs::read(testdata(name)).unwrap();
        assert!(bomb.len() < 64 << 10, "{name}: {} bytes", bomb.len());
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&bomb).unwrap(),
            pledged,
            "{name}"
        );
        let mut dec = zstd::stream::Decoder::new(&bomb[..]).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = dec.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == 0), "{name}");
            total += n as u64;
        }
        assert_eq!(total, 1 << 30, "{name}");
    }
}
