//! Turning engine results into text for people (and, where asked, JSON). `report/` is the only place
//! in stackform that formats for humans: the engine (`plan/`, `apply/`) produces values and events,
//! and the functions here render them as pure `String`s that the CLI prints. Nothing here decides
//! anything, reads state or talks to the cloud; colour is used only when the caller says so.
pub mod junit;
pub mod plan;
pub mod progress;
pub mod stdio;
