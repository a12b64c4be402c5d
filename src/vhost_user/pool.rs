//! A fixed pool of threads that run request jobs handed over through a bounded channel
//! (`--thread-pool-size`). When `bound` jobs wait, [`ThreadPool::submit`] blocks: the
//! queue's thread stops taking chains from the guest until a worker is free, so a guest
//! that keeps publishing requests (even the same descriptor chain again and again) cannot
//! make the daemon queue work without limit.

use std::io;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};

/// One unit of work: serve a request and complete it on its vring.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads taking jobs from one channel.
pub struct ThreadPool {
    tx: Mutex<Option<mpsc::SyncSender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl ThreadPool {
    /// Starts `size` threads named `name`, taking jobs from a queue of at most `bound`.
    ///
    /// # Errors
    /// A thread could not be spawned (the threads already started are stopped).
    pub fn new(size: usize, name: &str, bound: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Job>(bound);
        let rx = Arc::new(Mutex::new(rx));
        let pool = Self {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(Vec::with_capacity(size)),
        };
        for _ in 0..size {
            let rx = rx.clone();
            let handle = thread::Builder::new()
                .name(name.to_string())
                .spawn(move || {
                    loop {
                        // Hold the lock only to take one job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the pool was shut down
                        }
                    }
                });
            match handle {
                Ok(h) => pool
                    .threads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(h),
                Err(e) => {
                    pool.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// Queues `job`, waiting while the queue is full; gives it back if the pool is shut
    /// down.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        // Send outside the lock: a full queue must not keep `shutdown` from the sender.
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match tx {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// Stops taking jobs, lets the queued ones finish, and joins the threads.
    pub fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            if t.join().is_err() {
                log::error!("a request worker thread panicked");
            }
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn runs_every_job_before_shutdown_returns() {
        let pool = ThreadPool::new(3, "test-pool", 4).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let c = count.clone();
            pool.submit(Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap_or_else(|_| panic!("pool refused a job"));
        }
        pool.shutdown();
        assert_eq!(count.load(Ordering::SeqCst), 100);
        assert!(pool.submit(Box::new(|| {})).is_err());
    }

    #[test]
    fn a_full_queue_holds_the_submitter_back() {
        let pool = Arc::new(ThreadPool::new(1, "test-pool", 2).unwrap());
        let (release, blocked) = mpsc::channel::<()>();
        let blocked = Mutex::new(blocked);
        // The one worker is busy until released; two more jobs fill the queue.
        pool.submit(Box::new(move || {
            let _ = blocked.lock().unwrap().recv();
        }))
        .unwrap_or_else(|_| panic!("pool refused a job"));
        std::thread::sleep(std::time::Duration::from_millis(50));
        for _ in 0..2 {
            pool.submit(Box::new(|| {}))
                .unwrap_or_else(|_| panic!("refused"));
        }
        let p2 = pool.clone();
        let submitter = std::thread::spawn(move || p2.submit(Box::new(|| {})).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !submitter.is_finished(),
            "a fourth job was queued past the bound"
        );
        release.send(()).unwrap();
        assert!(submitter.join().unwrap());
        pool.shutdown();
    }
}
