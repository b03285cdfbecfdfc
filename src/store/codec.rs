//! The store's dictionary codecs: payloads (zstd, with a payload dictionary: the second since
//! schema 4, the first still read) and lifecycle records (LZ4, with a record dictionary). Every
//! dictionary is **frozen**: what it packed cannot be read back without its exact bytes (tests
//! pin their CRCs). A better dictionary gets a new marker and file, and the old one stays for
//! what it wrote.
//!
//! Measured on the 10,000 simulator alerts of the race's outbox fill (issue 13): a payload is
//! 4,396 bytes of JSON; LZ4 with the payload dictionary packed it into 1,470 bytes at 9–12 µs,
//! zstd level 3 with the same bytes as a raw-content dictionary into 935 bytes at 19 µs (read
//! back in 5 µs against LZ4's 2). Level 1 gave 984 bytes at 17–22 µs; levels above 3 cost
//! several times the time for 5–10 % less.
//!
//! Since schema 4 payloads are written with the second payload dictionary
//! ([`PAYLOAD_DICT_V2`]): the same content, with the entropy tables zstd builds for it. A
//! frame then starts from those tables instead of describing its own, so the same 2,000
//! alerts of that fill packed into 878 bytes instead of 937, in 14 µs instead of 19, and read
//! back in 2.9 µs instead of 4.6 (one thread, release build); the real sample answers' items
//! that are not in the content (two to three a domain) packed 6–12 % smaller too. A
//! dictionary *trained* on simulator payloads packed those alerts into 538 bytes, but it learnt
//! the simulator's names and paths: the real vulnerability, baseline and firewall items packed
//! worse with it than with no dictionary at all, so it was not taken.

use std::cell::RefCell;
use std::sync::OnceLock;

use super::PAYLOAD_DICT;

/// The second payload dictionary (zstd's dictionary format, id 32770): [`PAYLOAD_DICT`]'s
/// bytes as content, after the entropy tables `ZDICT_finalizeDictionary` (zstd 1.5.2, level 3)
/// derived for it from 1,000 payloads of a race outbox fill (simulator alerts, the first of
/// the 10,000; the measurements above used 2,000 others). **Frozen** like the first: a test
/// pins its CRC, and frames carry its id, so a frame meets the wrong dictionary as an error.
pub(super) static PAYLOAD_DICT_V2: &[u8] = include_bytes!("payload-dict-v2.zdict");

/// Which payload dictionary a zstd frame was written with (its marker says).
#[derive(Clone, Copy, Debug)]
pub(super) enum Dict {
    /// [`PAYLOAD_DICT`] as raw content ([`ZSTD_DICT_JSON`](super::ZSTD_DICT_JSON), schema 3).
    V1,
    /// [`PAYLOAD_DICT_V2`] ([`ZSTD_DICT2_JSON`](super::ZSTD_DICT2_JSON), schema 4 on).
    V2,
}

/// The zstd level payloads are written at.
pub(super) const ZSTD_LEVEL: i32 = 3;

/// The most a packed value may claim to unpack to: a damaged header is an error here, never a
/// huge allocation. Payloads are capped far below it (a webhook body is 256 KiB by default).
const MAX_UNPACKED: u64 = 64 << 20;

/// The dictionary of records: the records of the four `render --sample` findings (alerts,
/// vulnerabilities, baseline, firewall; two active, two resolved), compact JSON, one per
/// line. A simulator alert's record of 248 bytes packs into about 100 with it.
pub(super) static RECORD_DICT: &[u8] = include_bytes!("record-dict-v1.json");

/// The prepared dictionary payloads are written with ([`Dict::V2`]; tests can write
/// [`Dict::V1`] frames as schema 3 did).
fn cdict(dict: Dict) -> &'static zstd_safe::CDict<'static> {
    static V1: OnceLock<zstd_safe::CDict<'static>> = OnceLock::new();
    static V2: OnceLock<zstd_safe::CDict<'static>> = OnceLock::new();
    match dict {
        Dict::V1 => V1.get_or_init(|| zstd_safe::create_cdict(PAYLOAD_DICT, ZSTD_LEVEL)),
        Dict::V2 => V2.get_or_init(|| zstd_safe::create_cdict(PAYLOAD_DICT_V2, ZSTD_LEVEL)),
    }
}

fn ddict(dict: Dict) -> &'static zstd_safe::DDict<'static> {
    static V1: OnceLock<zstd_safe::DDict<'static>> = OnceLock::new();
    static V2: OnceLock<zstd_safe::DDict<'static>> = OnceLock::new();
    match dict {
        Dict::V1 => V1.get_or_init(|| zstd_safe::create_ddict(PAYLOAD_DICT)),
        Dict::V2 => V2.get_or_init(|| zstd_safe::create_ddict(PAYLOAD_DICT_V2)),
    }
}

thread_local! {
    /// Contexts are reused: creating one per payload costs more than compressing it.
    static CCTX: RefCell<zstd_safe::CCtx<'static>> = RefCell::new(zstd_safe::CCtx::create());
    static DCTX: RefCell<zstd_safe::DCtx<'static>> = RefCell::new(zstd_safe::DCtx::create());
    /// A delivery reads one payload after another into this buffer.
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `json` as a [`ZSTD_DICT2_JSON`](super::ZSTD_DICT2_JSON) value (marker, then one zstd
/// frame), or `None` when zstd fails or would not make it smaller. Deterministic for a given
/// build.
pub(super) fn zstd(json: &[u8]) -> Option<Vec<u8>> {
    zstd_with(json, Dict::V2)
}

/// [`zstd`] with either dictionary, marked as its marker says.
pub(super) fn zstd_with(json: &[u8], dict: Dict) -> Option<Vec<u8>> {
    let mut out = vec![0u8; 1 + zstd_safe::compress_bound(json.len())];
    out[0] = match dict {
        Dict::V1 => super::ZSTD_DICT_JSON,
        Dict::V2 => super::ZSTD_DICT2_JSON,
    };
    let cdict = cdict(dict);
    let n = CCTX
        .with(|cctx| {
            let mut cctx = cctx.try_borrow_mut().ok()?;
            cctx.compress_using_cdict(&mut out[1..], json, cdict).ok()
        })
        .or_else(|| {
            // Re-entered (not done today): a context of its own.
            zstd_safe::CCtx::create()
                .compress_using_cdict(&mut out[1..], json, cdict)
                .ok()
        })?;
    if 1 + n >= json.len() {
        return None;
    }
    out.truncate(1 + n);
    Some(out)
}

/// Unpacks a zstd frame (after its marker) into this thread's reused buffer and hands it to
/// `f`; damage (a cut frame, a bad size, a wrong dictionary) is an `Err` text.
pub(super) fn unzstd<T>(frame: &[u8], dict: Dict, f: impl FnOnce(Result<&[u8], String>) -> T) -> T {
    let len = zstd_safe::get_frame_content_size(frame);
    // `ZSTD_CONTENTSIZE_UNKNOWN` and `_ERROR` are the two largest values.
    if len >= u64::MAX - 1 {
        return f(Err("not a zstd frame with its size".to_string()));
    }
    if len > MAX_UNPACKED {
        return f(Err(format!(
            "{len} bytes claimed from a frame of {}",
            frame.len()
        )));
    }
    let len = len as usize;
    let unpack = |buf: &mut Vec<u8>, dctx: &mut zstd_safe::DCtx<'static>| {
        buf.clear();
        buf.reserve(len);
        match dctx.decompress_using_ddict(buf, frame, ddict(dict)) {
            Ok(n) if n == len => Ok(()),
            Ok(n) => Err(format!("{n} bytes where {len} were expected")),
            Err(code) => Err(zstd_safe::get_error_name(code).to_string()),
        }
    };
    let own = || {
        let mut buf = Vec::new();
        let unpacked = unpack(&mut buf, &mut zstd_safe::DCtx::create());
        (buf, unpacked)
    };
    BUF.with(|buf| {
        DCTX.with(|dctx| match (buf.try_borrow_mut(), dctx.try_borrow_mut()) {
            (Ok(mut buf), Ok(mut dctx)) => {
                let out = match unpack(&mut buf, &mut dctx) {
                    Ok(()) => f(Ok(&buf[..])),
                    Err(e) => f(Err(e)),
                };
                // One huge payload does not keep a huge buffer.
                if buf.capacity() > 1 << 20 {
                    *buf = Vec::new();
                }
                out
            }
            // Re-entered (not done today): a buffer and context of their own.
            _ => match own() {
                (buf, Ok(())) => f(Ok(&buf)),
                (_, Err(e)) => f(Err(e)),
            },
        })
    })
}

/// A record's JSON as stored: [`LZ4_RECORD_JSON`](super::LZ4_RECORD_JSON), the length (u32
/// LE), the LZ4 block with [`RECORD_DICT`] as its prefix; the JSON as it is when that is not
/// smaller. Deterministic, so a compare-and-swap on a re-encoded record still matches.
pub(super) fn pack_record(json: Vec<u8>) -> Vec<u8> {
    let Ok(len) = u32::try_from(json.len()) else {
        return json;
    };
    let mut out = vec![0u8; 5 + lz4_flex::block::get_maximum_output_size(json.len())];
    out[0] = super::LZ4_RECORD_JSON;
    out[1..5].copy_from_slice(&len.to_le_bytes());
    match lz4_flex::block::compress_into_with_dict(&json, &mut out[5..], RECORD_DICT) {
        Ok(n) if 5 + n < json.len() => {
            out.truncate(5 + n);
            out
        }
        _ => json,
    }
}

/// The JSON of a [`pack_record`] value (after its marker).
pub(super) fn unpack_record(packed: &[u8]) -> Result<Vec<u8>, String> {
    let (len, block) = lz4_claim(packed)?;
    lz4_flex::block::decompress_with_dict(block, len, RECORD_DICT).map_err(|e| e.to_string())
}

/// Splits an LZ4 value (after its marker) into the length it claims to unpack to (u32 LE)
/// and its block, refusing a claim no block of that size can honour: LZ4 expands at most
/// about 255:1, so a larger claim is damage, and asking for its buffer could mean gigabytes.
pub(super) fn lz4_claim(packed: &[u8]) -> Result<(usize, &[u8]), String> {
    let Some((len, block)) = packed.split_first_chunk::<4>() else {
        return Err("no length".to_string());
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > block.len().saturating_mul(255).saturating_add(64) || len as u64 > MAX_UNPACKED {
        return Err(format!(
            "{len} bytes claimed from a block of {}",
            block.len()
        ));
    }
    Ok((len, block))
}
