//! The doors out, each against a fake (or, for email, a real server) on 127.0.0.1.

mod chat;
mod feishu_wecom;
mod pagerduty;
mod webhook;
