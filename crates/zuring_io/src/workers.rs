//! A set of worker threads fed with [`Job`]s through one channel; shared by both backends.

use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::job::Job;

/// Worker threads that execute jobs. Dropping it closes the queue and waits for the workers,
/// which finish every job already queued or in flight first.
#[derive(Debug)]
pub(crate) struct Workers {
    name: &'static str,
    queue: Option<Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Start one thread per element of `states`, each running `work(state, queue)`.
    pub fn spawn<S: Send + 'static>(
        name: &'static str,
        states: Vec<S>,
        work: fn(S, Receiver<Job>),
    ) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut handles = Vec::with_capacity(states.len());
        for (i, state) in states.into_iter().enumerate() {
            let rx = rx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("zuring-{name}-{i}"))
                .spawn(move || work(state, rx))?;
            handles.push(handle);
        }
        Ok(Self {
            name,
            queue: Some(tx),
            handles,
        })
    }

    /// The backend's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Queue a job. Returns it when the workers are gone.
    pub fn send(&self, job: Job) -> Result<(), Job> {
        match &self.queue {
            Some(q) => q.send(job).map_err(|e| e.into_inner()),
            None => Err(job),
        }
    }

    /// Whether every worker thread is still running.
    pub fn alive(&self) -> bool {
        self.handles.iter().all(|h| !h.is_finished())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.queue = None;
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}
