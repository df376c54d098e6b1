//! Resource type specifications: the embedded `specs/*.yaml` files loaded into typed schemas.
//!
//! Everything that varies by resource type — fields, defaults, immutability, sensitivity, computed
//! attributes, the ARM path and api-version, the body paths of fields and nested fields, enum wire
//! spellings, duration formats, comparison rules, propagation and rollback behaviour — lives in those
//! files and drives validation, diffing, the JSON Schema (`stackform schema`), the provider's ARM mapping
//! and the apply engine's per-type decisions; `specs/README.md` describes the format. This module only
//! reads and checks them and answers questions about them; it does no I/O beyond the embedded text and
//! never names a resource type in its logic. A malformed spec is a bug caught by this module's tests.
pub mod compare;
mod registry;
pub(crate) mod roles;
mod schema;
mod spec;

pub use compare::Comparison;
pub use registry::Registry;
pub(crate) use schema::stack_json_schema;
pub(crate) use spec::registered_version;
pub use spec::{
    Aggregate, AmlFileKind, ArmMapping, AttributeSpec, DurationUnit, FieldSpec, FieldType, Lro,
    Plane, Propagation, ResourceSpec, SpecError, StringForm, WireFormat,
};
