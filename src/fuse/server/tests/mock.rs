//! A filesystem that records its calls and answers from canned data.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::Duration;

use crate::fuse::abi;
use crate::fuse::filesystem::{
    AddDirEntry, AddDirEntryPlus, Attributes, Context, DaxOps, DirEntry, DirOps, Entry, EntryOps,
    FileOps, LockOps, SessionOps, XattrOps, XattrReply,
};
use crate::fuse::io::{ZeroCopyReader, ZeroCopyWriter};

#[derive(Default)]
pub struct Mock {
    /// Flags `init` asks for.
    pub init_wants: u64,
    /// Every call, as text.
    pub calls: Mutex<Vec<String>>,
    /// The file READ and WRITE go to.
    pub file: Option<File>,
    /// Names READDIR(PLUS) lists.
    pub names: Vec<&'static str>,
    /// The xattr value GETXATTR/LISTXATTR answer.
    pub xattr: Vec<u8>,
}

impl Mock {
    /// The backing file of READ/WRITE, or EBADF when the test set none.
    fn file(&self) -> io::Result<&File> {
        self.file
            .as_ref()
            .ok_or(io::Error::from_raw_os_error(libc::EBADF))
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    /// The calls so far (INIT's excluded).
    pub fn calls(&self) -> Vec<String> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| !c.starts_with("init"))
            .cloned()
            .collect()
    }
}

pub fn stat() -> libc::stat64 {
    // SAFETY: stat64 is a C struct of integers; all zeroes is a valid value.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    st.st_ino = 9;
    st.st_mode = libc::S_IFREG | 0o644;
    st.st_size = 1234;
    st.st_blksize = 4096;
    st.st_rdev = 0x0803;
    st.st_mtime = 1_700_000_000;
    st.st_mtime_nsec = 5;
    st
}

pub fn entry(inode: u64) -> Entry {
    Entry {
        inode,
        generation: 3,
        attr: stat(),
        attr_flags: abi::ATTR_DAX,
        attr_timeout: Duration::from_millis(1500),
        entry_timeout: Duration::from_secs(2),
    }
}

impl SessionOps for Mock {
    fn init(&self, capable: u64) -> io::Result<u64> {
        self.record(format!("init {capable:#x}"));
        Ok(self.init_wants)
    }
    fn destroy(&self) {
        self.record("destroy".into());
    }
}

impl EntryOps for Mock {
    fn lookup(&self, _: &Context, parent: u64, name: &CStr) -> io::Result<Entry> {
        self.record(format!("lookup {parent} {name:?}"));
        Ok(entry(42))
    }
    fn forget(&self, _: &Context, inode: u64, count: u64) {
        self.record(format!("forget {inode} {count}"));
    }
    fn getattr(&self, _: &Context, inode: u64, fh: Option<u64>) -> io::Result<Attributes> {
        self.record(format!("getattr {inode} {fh:?}"));
        Ok(Attributes {
            attr: stat(),
            flags: 0,
            timeout: Duration::from_secs(1),
        })
    }
    fn mkdir(
        &self,
        ctx: &Context,
        parent: u64,
        name: &CStr,
        mode: u32,
        umask: u32,
    ) -> io::Result<Entry> {
        self.record(format!(
            "mkdir {parent} {name:?} {mode:o} {umask:o} uid {} gid {} supp {:?}",
            ctx.uid, ctx.gid, ctx.supp_gid
        ));
        Ok(entry(43))
    }
    fn unlink(&self, _: &Context, parent: u64, name: &CStr) -> io::Result<()> {
        self.record(format!("unlink {parent} {name:?}"));
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
    fn rename(
        &self,
        _: &Context,
        olddir: u64,
        oldname: &CStr,
        newdir: u64,
        newname: &CStr,
        flags: u32,
    ) -> io::Result<()> {
        self.record(format!(
            "rename {olddir} {oldname:?} {newdir} {newname:?} {flags}"
        ));
        Ok(())
    }
    fn symlink(&self, _: &Context, target: &CStr, parent: u64, name: &CStr) -> io::Result<Entry> {
        self.record(format!("symlink {target:?} {parent} {name:?}"));
        Ok(entry(44))
    }
}

impl FileOps for Mock {
    fn create(
        &self,
        _: &Context,
        parent: u64,
        name: &CStr,
        args: &abi::CreateIn,
    ) -> io::Result<(Entry, u64, u32)> {
        self.record(format!("create {parent} {name:?} {:o}", args.mode));
        Ok((entry(45), 7, abi::open_out_flags::KEEP_CACHE))
    }
    fn read(
        &self,
        _: &Context,
        _: u64,
        _: u64,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        _: u32,
    ) -> io::Result<usize> {
        self.record(format!("read {size} {offset}"));
        let file = self.file()?;
        // Asks for more than `size`: the server must hold the filesystem to it.
        w.write_from(file.as_fd(), size as usize + 100, offset)
    }
    fn write(
        &self,
        _: &Context,
        _: u64,
        _: u64,
        r: &mut dyn ZeroCopyReader,
        size: u32,
        offset: u64,
        _: u32,
        _: u32,
    ) -> io::Result<usize> {
        self.record(format!("write {size} {offset}"));
        let file = self.file()?;
        r.read_to(file.as_fd(), size as usize + 100, offset)
    }
}

impl DirOps for Mock {
    fn readdir(
        &self,
        _: &Context,
        _: u64,
        _: u64,
        size: u32,
        offset: u64,
        add: &mut AddDirEntry<'_>,
    ) -> io::Result<()> {
        let mut sent = 0;
        for (i, name) in self.names.iter().enumerate().skip(offset as usize) {
            let e = DirEntry {
                ino: 100 + i as u64,
                offset: i as u64 + 1,
                type_: 8,
                name: name.as_bytes(),
            };
            if add(e)? == 0 {
                break;
            }
            sent += 1;
        }
        self.record(format!("readdir {size} {offset}: {sent}"));
        Ok(())
    }
    fn readdirplus(
        &self,
        _: &Context,
        _: u64,
        _: u64,
        size: u32,
        offset: u64,
        add: &mut AddDirEntryPlus<'_>,
    ) -> io::Result<()> {
        let mut sent = 0;
        for (i, name) in self.names.iter().enumerate().skip(offset as usize) {
            let e = DirEntry {
                ino: 100 + i as u64,
                offset: i as u64 + 1,
                type_: 8,
                name: name.as_bytes(),
            };
            if add(e, entry(100 + i as u64))? == 0 {
                break;
            }
            sent += 1;
        }
        self.record(format!("readdirplus {size} {offset}: {sent}"));
        Ok(())
    }
}

impl XattrOps for Mock {
    fn setxattr(
        &self,
        _: &Context,
        _: u64,
        name: &CStr,
        value: &[u8],
        flags: u32,
        setxattr_flags: u32,
    ) -> io::Result<()> {
        let value = String::from_utf8_lossy(value);
        self.record(format!(
            "setxattr {name:?} {value} {flags} {setxattr_flags}"
        ));
        Ok(())
    }
    fn getxattr(&self, _: &Context, _: u64, name: &CStr, size: u32) -> io::Result<XattrReply> {
        self.record(format!("getxattr {name:?} {size}"));
        if size == 0 {
            Ok(XattrReply::Count(self.xattr.len() as u32))
        } else {
            Ok(XattrReply::Value(self.xattr.clone()))
        }
    }
    fn listxattr(&self, _: &Context, _: u64, size: u32) -> io::Result<XattrReply> {
        self.record(format!("listxattr {size}"));
        Ok(XattrReply::Value(self.xattr.clone()))
    }
}

impl LockOps for Mock {}

impl DaxOps for Mock {
    fn removemapping(&self, _: &Context, ranges: &[abi::RemovemappingOne]) -> io::Result<()> {
        let r: Vec<_> = ranges.iter().map(|r| (r.moffset, r.len)).collect();
        self.record(format!("removemapping {r:?}"));
        Ok(())
    }
}
