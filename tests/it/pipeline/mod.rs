//! A finding's path in process: the poller against the simulator, reminders through dispatch.

mod clock;
mod concurrency;
mod handled;
mod poller;
mod reminders;
