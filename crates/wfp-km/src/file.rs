//! Reading one whole file at PASSIVE_LEVEL: the stored policy.
//!
//! `ZwCreateFile` (read, synchronous, open-existing only) →
//! `ZwQueryInformationFile(FileStandardInformation)` for the size →
//! the size checked against the caller's limit before anything is allocated →
//! one fallible allocation → `ZwReadFile` in chunks of [`CHUNK`] bytes →
//! `ZwClose` (by [`File`]'s drop). A file that shrinks while it is read comes
//! back shorter (the caller's format check then calls it truncated); one that
//! grows is read up to the size first seen.

extern crate alloc;

use crate::status::{NtStatus, Result};
use crate::strings::WStr;
use crate::trace;
use alloc::vec::Vec;
use core::ptr;
use wfp_km_sys::ntos::{
    ZwClose, ZwCreateFile, ZwQueryInformationFile, ZwReadFile, FILE_ATTRIBUTE_NORMAL, FILE_NON_DIRECTORY_FILE,
    FILE_OPEN, FILE_SEQUENTIAL_ONLY, FILE_SHARE_READ, FILE_STANDARD_INFORMATION, FILE_STANDARD_INFORMATION_CLASS,
    FILE_SYNCHRONOUS_IO_NONALERT, GENERIC_READ, IO_STATUS_BLOCK, OBJECT_ATTRIBUTES, OBJ_CASE_INSENSITIVE,
    OBJ_KERNEL_HANDLE, SYNCHRONIZE,
};
use wfp_km_sys::HANDLE;

/// Bytes per `ZwReadFile` call: large enough that a 64 MiB file takes 64
/// calls, small enough that no single transfer is unusually large.
pub const CHUNK: usize = 1 << 20;

/// `STATUS_END_OF_FILE`.
const END_OF_FILE: i32 = 0xC000_0011_u32 as i32;

/// Why a file could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// A routine failed with this status (`STATUS_OBJECT_NAME_NOT_FOUND`
    /// when the file does not exist). Traced with the routine's name.
    Status(NtStatus),
    /// The file is larger than the caller's limit; nothing was allocated.
    TooLarge { size: u64 },
    /// The buffer for the file's size could not be allocated.
    OutOfMemory { size: u64 },
}

/// An open file handle.
///
/// # Invariants
/// `handle` came from a successful `ZwCreateFile` with `OBJ_KERNEL_HANDLE`
/// and is closed exactly once, in `drop`.
#[must_use = "dropping a File closes it"]
pub struct File {
    handle: HANDLE,
}

impl File {
    /// `ZwCreateFile`: opens an existing file for synchronous, sequential
    /// reading, sharing read access only. IRQL: PASSIVE_LEVEL.
    pub fn open_read(path: WStr) -> Result<Self> {
        let name = path.unicode_string();
        let attributes = OBJECT_ATTRIBUTES {
            Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: ptr::null_mut(),
            ObjectName: &name,
            // Kernel handle: no user process can use or close it.
            Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
            SecurityDescriptor: ptr::null(),
            SecurityQualityOfService: ptr::null(),
        };
        let mut io = IO_STATUS_BLOCK::default();
        let mut handle: HANDLE = ptr::null_mut();
        // SAFETY: `attributes`, the name and its buffer (a 'static WStr)
        // outlive the call; `handle` and `io` are valid out pointers; null
        // allocation size and EA buffer with length 0 are documented for an
        // open; PASSIVE_LEVEL per this function's contract.
        let status = unsafe {
            ZwCreateFile(
                &mut handle,
                GENERIC_READ | SYNCHRONIZE,
                &attributes,
                &mut io,
                ptr::null(),
                FILE_ATTRIBUTE_NORMAL,
                FILE_SHARE_READ,
                FILE_OPEN,
                FILE_NON_DIRECTORY_FILE | FILE_SYNCHRONOUS_IO_NONALERT | FILE_SEQUENTIAL_ONLY,
                ptr::null(),
                0,
            )
        };
        NtStatus::check(status)?;
        if handle.is_null() {
            return Err(NtStatus::UNSUCCESSFUL);
        }
        // INVARIANT: a successful ZwCreateFile gave this kernel handle.
        Ok(Self { handle })
    }

}

/// What [`read_all`]'s loop needs of a file: the trait seam that lets the
/// loop (limit, chunking, a file that shrinks) run in host tests.
pub trait Readable {
    /// The file's size in bytes.
    fn size(&self) -> Result<u64>;
    /// Reads at `offset` into `buf`; the bytes read, 0 at the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize>;
}

impl Readable for File {
    /// `ZwQueryInformationFile(FileStandardInformation)`'s `EndOfFile`.
    /// IRQL: PASSIVE_LEVEL.
    fn size(&self) -> Result<u64> {
        let mut info = FILE_STANDARD_INFORMATION::default();
        let mut io = IO_STATUS_BLOCK::default();
        // SAFETY: type invariant: open handle; `info` is writable for the
        // length passed; PASSIVE_LEVEL per this function's contract.
        let status = unsafe {
            ZwQueryInformationFile(
                self.handle,
                &mut io,
                ptr::from_mut(&mut info).cast(),
                core::mem::size_of::<FILE_STANDARD_INFORMATION>() as u32,
                FILE_STANDARD_INFORMATION_CLASS,
            )
        };
        trace::checked("ZwQueryInformationFile", status)?;
        u64::try_from(info.EndOfFile).map_err(|_| NtStatus::UNSUCCESSFUL)
    }

    /// `ZwReadFile` at `offset` into `buf`; returns the bytes read (0 at the
    /// end of the file). IRQL: PASSIVE_LEVEL.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let length = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let byte_offset = i64::try_from(offset).map_err(|_| NtStatus::INVALID_PARAMETER)?;
        let mut io = IO_STATUS_BLOCK::default();
        // SAFETY: type invariant: open handle, opened for synchronous I/O,
        // so the call returns only when the transfer is done and `buf`,
        // `io` and `byte_offset` need to live only for the call; `buf` is
        // writable for `length` <= its length; PASSIVE_LEVEL per contract.
        let status = unsafe {
            ZwReadFile(
                self.handle,
                ptr::null_mut(),
                ptr::null(),
                ptr::null(),
                &mut io,
                buf.as_mut_ptr().cast(),
                length,
                &byte_offset,
                ptr::null(),
            )
        };
        if status == END_OF_FILE {
            return Ok(0);
        }
        trace::checked("ZwReadFile", status)?;
        Ok(io.Information.min(buf.len()))
    }
}

impl Drop for File {
    /// `ZwClose`; a failure is traced (the handle is gone either way).
    fn drop(&mut self) {
        // SAFETY: type invariant: open kernel handle, closed once.
        let _ = trace::checked("ZwClose", unsafe { ZwClose(self.handle) });
    }
}

/// Reads the whole file at `path` if it is at most `max_len` bytes.
/// A missing file is returned as `Status(STATUS_OBJECT_NAME_NOT_FOUND)` (or
/// `..._PATH_NOT_FOUND`) without an error trace: no stored policy is a normal
/// state. IRQL: PASSIVE_LEVEL.
pub fn read_all(path: WStr, max_len: usize) -> core::result::Result<Vec<u8>, ReadError> {
    let file = match File::open_read(path) {
        Ok(f) => f,
        Err(s) if s == NtStatus::OBJECT_NAME_NOT_FOUND || s == NtStatus::OBJECT_PATH_NOT_FOUND => {
            trace::info(format_args!("weir: ZwCreateFile: no stored policy file ({s})"));
            return Err(ReadError::Status(s));
        }
        Err(s) => {
            trace::failed("ZwCreateFile", s);
            return Err(ReadError::Status(s));
        }
    };
    read_open(&file, max_len)
}

/// The loop of [`read_all`] over any [`Readable`].
pub fn read_open<F: Readable>(file: &F, max_len: usize) -> core::result::Result<Vec<u8>, ReadError> {
    let size = file.size().map_err(ReadError::Status)?;
    let len = match usize::try_from(size) {
        Ok(len) if len <= max_len => len,
        _ => return Err(ReadError::TooLarge { size }),
    };
    let mut data = Vec::new();
    data.try_reserve_exact(len).map_err(|_| ReadError::OutOfMemory { size })?;
    data.resize(len, 0);
    let mut done = 0usize;
    while let Some(rest) = data.get_mut(done..).filter(|r| !r.is_empty()) {
        let chunk = rest.len().min(CHUNK);
        let dst = rest.get_mut(..chunk).ok_or(ReadError::Status(NtStatus::UNSUCCESSFUL))?;
        let n = file.read_at(done as u64, dst).map_err(ReadError::Status)?;
        if n == 0 {
            break; // shrank under us: what was read is all there is
        }
        done += n;
    }
    data.truncate(done);
    Ok(data)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use core::cell::Cell;

    /// A file double: `data`, whose reported size may differ from its
    /// content (a file that shrank or grew after the size was read).
    struct Mem {
        data: Vec<u8>,
        size: u64,
        reads: Cell<usize>,
        fail_read: Option<NtStatus>,
    }

    impl Readable for Mem {
        fn size(&self) -> Result<u64> {
            Ok(self.size)
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
            self.reads.set(self.reads.get() + 1);
            if let Some(s) = self.fail_read {
                return Err(s);
            }
            let rest = self.data.get(offset as usize..).unwrap_or(&[]);
            let n = rest.len().min(buf.len());
            buf.get_mut(..n).unwrap().copy_from_slice(rest.get(..n).unwrap());
            Ok(n)
        }
    }

    fn mem(data: Vec<u8>, size: u64) -> Mem {
        Mem { data, size, reads: Cell::new(0), fail_read: None }
    }

    #[test]
    fn whole_file_in_chunks() {
        let data: Vec<u8> = (0..(2 * CHUNK + 5)).map(|i| i as u8).collect();
        let f = mem(data.clone(), data.len() as u64);
        assert_eq!(read_open(&f, 3 * CHUNK).unwrap(), data);
        assert_eq!(f.reads.get(), 3);
        let empty = mem(Vec::new(), 0);
        assert_eq!(read_open(&empty, 10).unwrap(), Vec::<u8>::new());
        assert_eq!(empty.reads.get(), 0);
    }

    #[test]
    fn over_the_limit_is_refused_before_any_read() {
        let f = mem(vec![1; 11], 11);
        assert_eq!(read_open(&f, 10), Err(ReadError::TooLarge { size: 11 }));
        assert_eq!(f.reads.get(), 0);
        let huge = mem(Vec::new(), u64::MAX);
        assert_eq!(read_open(&huge, usize::MAX), Err(ReadError::OutOfMemory { size: u64::MAX }));
        assert_eq!(huge.reads.get(), 0);
    }

    #[test]
    fn a_file_that_shrank_comes_back_short_and_one_that_grew_is_cut_at_its_size() {
        let shrank = mem(vec![7; 5], 9);
        assert_eq!(read_open(&shrank, 100).unwrap(), vec![7; 5]);
        let grew = mem(vec![7; 20], 9);
        assert_eq!(read_open(&grew, 100).unwrap(), vec![7; 9]);
    }

    #[test]
    fn a_failed_read_is_its_status() {
        let mut f = mem(vec![1; 4], 4);
        f.fail_read = Some(NtStatus::ACCESS_DENIED);
        assert_eq!(read_open(&f, 10), Err(ReadError::Status(NtStatus::ACCESS_DENIED)));
    }
}
