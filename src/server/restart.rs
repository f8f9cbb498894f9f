//! Owns: the warm restart's files (`-e PATH`, docs/restart.md). At start-up: reading `PATH.meta`
//! and `PATH` back into the store, or logging why not and starting with a clean cache (an empty
//! metadata file is a start-up error, as memcached makes it), then removing both files (a later
//! crash must never bring this state back) and checking `PATH` can be written. On a graceful
//! stop: the pages to `PATH`, then the metadata to `PATH.meta`, each through a temporary file and
//! a rename, the metadata last, so a stop cut short leaves no metadata and the next start is cold.
//! Every line it logs starts `[restart]` and is logged at any verbosity (as memcached prints them).
//! Does not: decode pages or items, or decide what is restored (see `store::restart`).

use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::{debug, warn};

use crate::config::ConfigError;
use crate::fsutil;
use crate::state::Shared;
use crate::store::restart::{
    Clocks, Layout, Meta, PageRecord, RestoreReport, ShardImage, DATA_HEADER, DATA_MAGIC,
};

/// Where the metadata of a save to `path` goes: `PATH.meta`, as memcached names it.
pub fn meta_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

/// With `-e`: restores the cache saved at the configured path, or starts clean (see the module
/// header). Runs before any thread serves.
pub fn restore(sh: &Shared) -> Result<(), ConfigError> {
    let Some(path) = sh.config().memory_file.clone() else {
        return Ok(());
    };
    let meta_file = meta_path(&path);
    match std::fs::read(&meta_file) {
        Ok(bytes) if bytes.is_empty() => {
            return Err(super::fail(
                format!(
                    "[restart] the metadata file {} is empty: refusing to start (remove it to start with a clean cache)",
                    meta_file.display()
                ),
                1,
            ));
        }
        Ok(bytes) => {
            let _ = std::fs::remove_file(&meta_file);
            let started = Instant::now();
            match load(sh, &path, &bytes) {
                Ok((r, pages, mb)) => warn!(
                    "[restart] restored {} items from {pages} pages ({mb} MB) of {} in {} ms; dropped {} expired, {} invalid, {} not stored, {} bad pages",
                    r.restored,
                    path.display(),
                    started.elapsed().as_millis(),
                    r.expired,
                    r.invalid,
                    r.not_stored,
                    r.bad_pages
                ),
                Err(why) => warn!("[restart] {why}: starting with a clean cache"),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => warn!(
            "[restart] no metadata file {}: starting with a clean cache",
            meta_file.display()
        ),
        Err(e) => warn!(
            "[restart] cannot read {}: {e}: starting with a clean cache",
            meta_file.display()
        ),
    }
    // The data is in the cache now (or useless): the file would only hold memory on a tmpfs.
    let _ = std::fs::remove_file(&path);
    File::create(fsutil::tmp_path(&path))
        .and_then(|_| std::fs::remove_file(fsutil::tmp_path(&path)))
        .map_err(|e| {
            super::fail(
                format!(
                    "[restart] cannot write the memory file {}: {e}",
                    path.display()
                ),
                71,
            )
        })
}

/// Reads a save back: the items restored, the pages read and their megabytes; or why nothing is.
fn load(
    sh: &Shared,
    path: &Path,
    meta_bytes: &[u8],
) -> Result<(RestoreReport, usize, u64), String> {
    let mut meta = Meta::parse(meta_bytes).map_err(|e| e.to_string())?;
    let layout = Layout::of(&sh.config().store_config());
    if let Some(d) = layout.differs(&meta.layout) {
        return Err(format!("restart incompatible: {d}"));
    }
    let shown = path.display();
    let file = File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if len != meta.data_len {
        return Err(format!(
            "{shown} is {len} bytes and its metadata says {} (truncated or replaced)",
            meta.data_len
        ));
    }
    let mut head = [0u8; DATA_HEADER as usize];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if head[..8] != DATA_MAGIC || head[8..] != meta.nonce.to_le_bytes() {
        return Err(format!("{shown} is not the data this metadata describes"));
    }
    // The save is usable: go on with its process's clock and event numbers (as memcached's
    // restart does), and its delayed flush.
    sh.clock().resume(meta.started_unix);
    sh.logger().resume_gid(meta.logger_gid);
    if meta.pending_flush != 0 {
        if meta.pending_flush <= sh.clock().now() {
            // Due while the cache was down: every saved item is flushed.
            meta.flush_cas = meta.cas;
        } else {
            sh.schedule_flush(Some(meta.pending_flush));
        }
    }
    let clocks = Clocks {
        old_started: meta.started_unix,
        new_started: sh.clock().started_unix(),
        now: sh.clock().now(),
    };
    sh.store().prepare_restore(&meta);
    // Saved shards are independent, and so are the store's shards: a few threads take them in
    // turn, first to store the saved shards' items, then to index each shard's.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let started = Instant::now();
    let mut report = RestoreReport::default();
    for r in on_threads(threads, meta.shards as usize, |shards| {
        restore_shards(sh, &file, len, &meta, clocks, shards)
    }) {
        report.add(&r);
    }
    let stored = started.elapsed();
    on_threads(threads, sh.store().shard_count(), |shards| {
        shards.for_each(|s| sh.store().index_restored(s))
    });
    sh.store().finish_restore(&meta, &mut report);
    debug!(
        "[restart] on {threads} threads: pages read, checked and items stored in {} ms, indexed in {} ms",
        stored.as_millis(),
        (started.elapsed() - stored).as_millis()
    );
    Ok((report, meta.pages.len(), (len - DATA_HEADER) >> 20))
}

/// Runs `work` on up to `threads` threads over `0..n`: thread `t` gets `t`, `t + threads`, ...
/// Returns each thread's result; a panic goes on in the caller.
fn on_threads<R: Send>(
    threads: usize,
    n: usize,
    work: impl Fn(std::iter::StepBy<std::ops::Range<usize>>) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, n.max(1));
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || work((t..n).step_by(threads))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Restores the saved shards `shards` of the data file (`len` bytes), one at a time through one
/// buffer; pages outside the file, of a bad shape, failing their checksum or that cannot be
/// read are counted bad.
fn restore_shards(
    sh: &Shared,
    file: &File,
    len: u64,
    meta: &Meta,
    clocks: Clocks,
    shards: impl Iterator<Item = usize>,
) -> RestoreReport {
    let mut report = RestoreReport::default();
    let mut buf = Vec::new();
    for shard in shards {
        let recs: Vec<&PageRecord> = meta
            .pages
            .iter()
            .filter(|p| p.shard as usize == shard)
            .collect();
        let in_file = |r: &PageRecord| {
            r.offset >= DATA_HEADER && r.offset.checked_add(r.len).is_some_and(|e| e <= len)
        };
        let (Some(lo), Some(hi)) = (
            recs.iter().filter(|r| in_file(r)).map(|r| r.offset).min(),
            recs.iter()
                .filter(|r| in_file(r))
                .map(|r| r.offset + r.len)
                .max(),
        ) else {
            report.bad_pages += recs.len() as u64;
            continue;
        };
        // Every byte is read over: the buffer is zeroed only where it grows.
        let need = (hi - lo) as usize;
        if buf.len() < need {
            buf.resize(need, 0);
        }
        let buf = &mut buf[..need];
        if let Err(e) = file.read_exact_at(buf, lo) {
            warn!("[restart] cannot read the pages of saved shard {shard}: {e}");
            report.bad_pages += recs.len() as u64;
            continue;
        }
        let mut image = ShardImage::default();
        for r in &recs {
            let bytes = in_file(r).then(|| &buf[(r.offset - lo) as usize..][..r.len as usize]);
            match bytes {
                Some(b) if meta.page_ok(r, b) => image.add(r.slot, r.chunk_size as usize, b),
                _ => report.bad_pages += 1,
            }
        }
        sh.store().restore_shard(meta, &image, clocks, &mut report);
    }
    report
}

/// With `-e`, on a graceful stop (every worker stopped): saves the cache (see the module header).
pub fn save(sh: &Shared) {
    let Some(path) = sh.config().memory_file.clone() else {
        return;
    };
    let started = Instant::now();
    let meta_file = meta_path(&path);
    let _ = std::fs::remove_file(&meta_file);
    sh.clock().tick();
    let mut meta = sh
        .store()
        .meta_template(Layout::of(&sh.config().store_config()));
    meta.nonce = std::collections::hash_map::RandomState::new()
        .hash_one((std::process::id(), SystemTime::now()));
    meta.started_unix = sh.clock().started_unix();
    meta.pending_flush = sh.pending_flush();
    meta.logger_gid = sh.logger().next_gid();
    meta.saved_now = sh.clock().now();
    meta.saved_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut pages = Vec::new();
    let mut end = DATA_HEADER;
    let written = fsutil::write_with(&fsutil::tmp_path(&path), &path, |f| {
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&DATA_MAGIC)?;
        w.write_all(&meta.nonce.to_le_bytes())?;
        sh.store().save_pages(|shard, slot, cs, bytes| {
            w.write_all(bytes)?;
            pages.push(PageRecord::of(shard, slot, cs, end, bytes));
            end += bytes.len() as u64;
            Ok::<(), io::Error>(())
        })?;
        w.flush()
    });
    meta.data_len = end;
    meta.pages = pages;
    let saved =
        written.and_then(|()| fsutil::write_atomically(&meta_file, meta.encode().as_bytes()));
    match saved {
        Ok(()) => warn!(
            "[restart] saved {} pages ({} MB) to {} and {} in {} ms",
            meta.pages.len(),
            (end - DATA_HEADER) >> 20,
            path.display(),
            meta_file.display(),
            started.elapsed().as_millis()
        ),
        Err(e) => warn!(
            "[restart] cannot save the cache to {}: {e}; the next start will be clean",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::on_threads;

    #[test]
    fn on_threads_takes_every_shard_once_whatever_the_counts() {
        for threads in 1..=5 {
            for n in 0..=9 {
                let per_thread: Vec<Vec<usize>> = on_threads(threads, n, |it| it.collect());
                assert!(per_thread.len() <= threads.min(n.max(1)));
                let mut all = per_thread.concat();
                all.sort_unstable();
                assert_eq!(all, (0..n).collect::<Vec<_>>(), "{threads} threads, {n}");
            }
        }
    }
}
