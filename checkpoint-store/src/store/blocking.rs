//! The blocking forms of the primitive operations (for inspection and the command-line
//! paths): each runs its `async` form through [`CheckpointStore::block_on`].

use cornerstone_backend_api::Result;

use super::{CheckpointStore, Listed};

impl CheckpointStore {
    pub(crate) fn read_small(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        self.block_on(self.read_small_async(path, limit))
    }

    pub(crate) fn size_and_crc32(&self, path: &str) -> Result<(u64, u32)> {
        self.block_on(self.size_and_crc32_async(path))
    }

    pub(crate) fn exists(&self, path: &str) -> Result<bool> {
        self.block_on(self.exists_async(path))
    }

    pub(crate) fn modified_ms(&self, path: &str) -> Result<Option<u64>> {
        self.block_on(self.modified_ms_async(path))
    }

    pub(crate) fn size(&self, path: &str) -> Result<u64> {
        self.block_on(self.size_async(path))
    }

    pub(crate) fn delete(&self, path: &str) -> Result<()> {
        self.block_on(self.delete_async(path))
    }

    /// Best effort, as its async form: does nothing inside a tokio runtime.
    pub(crate) fn delete_dir_if_empty(&self, dir: &str) {
        let _ = self.block_on(async {
            self.delete_dir_if_empty_async(dir).await;
            Ok(())
        });
    }

    pub(crate) fn list(&self, dir: &str, recursive: bool) -> Result<Vec<Listed>> {
        self.block_on(self.list_async(dir, recursive))
    }
}
