//! `Tree::apply` frees what sled leaves behind. A binary of its own: the epoch moves on
//! only when no thread is pinned, and other tests' stores keep sled's background threads
//! busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use store::{Batch, Store};

#[test]
fn a_batch_applied_leaves_nothing_deferred_before_it_unfreed() {
    let tree = Store::temporary().unwrap().open_tree("t").unwrap();
    // Garbage of this thread from before the batch, deferred as sled defers a node it
    // replaced; with sled's `apply_batch` alone it is never freed here.
    let freed = Arc::new(AtomicBool::new(false));
    let marker = freed.clone();
    sled::pin().defer(move || marker.store(true, Ordering::SeqCst));
    let mut batch = Batch::default();
    batch.insert(b"key".as_slice(), b"value".as_slice());
    tree.apply(batch).unwrap();
    assert!(freed.load(Ordering::SeqCst), "freed by the time the batch returns");
    assert_eq!(tree.get(b"key").unwrap().as_deref(), Some(b"value".as_slice()));
}
