//! The integration suite: one binary, every test spawns the broker on port 0 against fakes or
//! real peers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_firebase;
mod fake_op;
mod helpers;
mod peers;

mod admin;
mod bearer_memory;
mod browser;
mod cli;
mod devices;
mod firebase;
mod frontend;
mod id_token;
mod interop_firebase;
mod interop_oidc_provider;
mod kinds;
mod layout;
mod limits;
mod linking;
mod listener;
mod login;
mod logout;
mod observe;
mod op;
mod op_interop;
mod openapi;
mod provider_logout;
mod provider_metadata;
mod provider_token;
mod proxy_edges;
mod redirects;
mod refresh;
mod scale;
mod session;
mod session_keys;
mod session_status;
mod token_mode;
mod traces;
