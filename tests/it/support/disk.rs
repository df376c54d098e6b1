//! A really small file system for full-disk tests: a tmpfs of a given size mounted on a fresh folder
//! (needs root, or a user allowed to mount), filled to the last byte with a ballast file that the
//! test removes to give the space back. Unmounted and removed when dropped.
use std::io::Write;
use std::path::{Path, PathBuf};

pub(crate) struct TinyDisk {
    mount: PathBuf,
}

impl TinyDisk {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `16m`), or `None` with the reason printed
    /// when mounting is not permitted here (the test then has nothing to check and says so).
    pub(crate) fn mount(size: &str) -> Option<TinyDisk> {
        let base = tempfile::tempdir().expect("temp dir").keep();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&base)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(TinyDisk { mount: base }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                println!("SKIPPED: cannot mount a small tmpfs for a full-disk test here: {why}");
                let _ = std::fs::remove_dir(&base);
                None
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.mount
    }

    /// Writes a ballast file until the file system refuses another byte.
    pub(crate) fn fill(&self) {
        let mut f = std::fs::File::create(self.ballast()).expect("create the ballast");
        let chunk = vec![0u8; 64 * 1024];
        let mut size = chunk.len();
        // Big chunks first, then ever smaller ones down to single bytes, so the disk is truly full.
        while size > 0 {
            while f.write_all(&chunk[..size]).is_ok() {}
            size /= 2;
        }
        let _ = f.sync_all();
    }

    /// Shrinks the ballast by `bytes`: that much room (rounded to the file system's pages) is back.
    pub(crate) fn leave(&self, bytes: u64) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.ballast())
            .expect("open the ballast");
        let len = f.metadata().expect("ballast size").len();
        f.set_len(len.saturating_sub(bytes))
            .expect("shrink the ballast");
    }

    /// Removes the ballast: the space is back.
    pub(crate) fn free(&self) {
        std::fs::remove_file(self.ballast()).expect("remove the ballast");
    }

    fn ballast(&self) -> PathBuf {
        self.mount.join("ballast")
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(&self.mount)
            .status();
        let _ = std::fs::remove_dir(&self.mount);
    }
}
