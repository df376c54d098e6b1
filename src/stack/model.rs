//! The loaded stack: what a stack file says once variables and environment values are substituted and
//! every field is checked against its spec. References to other resources stay symbolic ([`Expr`]) until
//! plan or apply knows their values. Every value keeps the place it came from ([`Loc`]), which may be the
//! stack file or an Azure ML YAML named by `file:`.
use std::path::PathBuf;

use indexmap::IndexMap;

use crate::diag::{SourceFile, Span};

/// Where a value was written.
#[derive(Clone)]
pub struct Loc {
    pub source: SourceFile,
    pub span: Span,
}

impl Loc {
    /// `path:line:col` of the start of the value.
    pub fn location(&self) -> String {
        let (line, col) = self.source.line_col(self.span.start);
        format!("{}:{line}:{col}", self.source.display_path())
    }
}

/// Shows `path:line:col` rather than the whole source text.
impl std::fmt::Debug for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Loc({})", self.location())
    }
}

/// A validated stack.
#[derive(Debug, Clone)]
pub struct Stack {
    /// The `stack:` name; names the state file.
    pub name: String,
    /// The stack file itself.
    pub source: SourceFile,
    /// Folder of the stack file; relative paths resolve against it.
    pub dir: PathBuf,
    pub cloud: CloudSection,
    /// The `backend:` section: where the state is kept (`None`: no section, the local default).
    pub backend: Option<BackendSection>,
    pub variables: IndexMap<String, Variable>,
    /// In file order.
    pub resources: IndexMap<String, Resource>,
    pub outputs: IndexMap<String, Output>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CloudKind {
    #[default]
    Local,
    Azure,
    AzureChina,
    AzureUsGovernment,
    Custom,
}

impl CloudKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CloudKind::Local => "local",
            CloudKind::Azure => "azure",
            CloudKind::AzureChina => "azure_china",
            CloudKind::AzureUsGovernment => "azure_us_government",
            CloudKind::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<CloudKind> {
        Some(match s {
            "local" => CloudKind::Local,
            "azure" => CloudKind::Azure,
            "azure_china" => CloudKind::AzureChina,
            "azure_us_government" => CloudKind::AzureUsGovernment,
            "custom" => CloudKind::Custom,
            _ => return None,
        })
    }

    pub(crate) const ALL: [&'static str; 5] = [
        "local",
        "azure",
        "azure_china",
        "azure_us_government",
        "custom",
    ];
}

/// The `cloud:` section with variables and environment values substituted. Absent values are `None`; for
/// the local cloud they come from the running local cloud.
#[derive(Debug, Clone, Default)]
pub struct CloudSection {
    pub kind: CloudKind,
    pub subscription: Option<String>,
    pub resource_group: Option<String>,
    pub workspace: Option<String>,
    pub location: Option<String>,
    pub tenant: Option<String>,
    pub arm_endpoint: Option<String>,
    pub authority_host: Option<String>,
    /// api-version overrides by resource type or ARM namespace (the specs give the defaults).
    pub api_versions: std::collections::BTreeMap<String, String>,
}

/// The kinds of `backend:`: where a stack's state is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// A state file in a folder (`state/` beside the stack file by default).
    Local,
    /// A blob in an Azure Storage container, locked by a blob lease.
    AzureBlob,
}

impl BackendKind {
    pub const ALL: [&'static str; 2] = ["local", "azure_blob"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            "azure_blob" => Some(Self::AzureBlob),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::AzureBlob => "azure_blob",
        }
    }
}

/// The `backend:` section with variables substituted; each value checked for its form where it was
/// written. A kind's required keys are checked once flags and environment are merged in
/// (`crate::backend::config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSection {
    pub kind: Option<BackendKind>,
    /// Where the section is, for errors about what it lacks.
    pub span: crate::diag::Span,
    pub account: Option<String>,
    pub container: Option<String>,
    pub key: Option<String>,
    pub resource_group: Option<String>,
    pub endpoint: Option<String>,
}

/// A variable's final value and where it came from. `Debug` hides the value of a sensitive variable.
#[derive(Clone)]
pub struct Variable {
    pub value: serde_json::Value,
    pub sensitive: bool,
    pub description: Option<String>,
    pub origin: VariableOrigin,
}

impl std::fmt::Debug for Variable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Variable");
        if self.sensitive {
            d.field("value", &"(sensitive)");
        } else {
            d.field("value", &self.value);
        }
        d.field("sensitive", &self.sensitive)
            .field("description", &self.description)
            .field("origin", &self.origin)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableOrigin {
    Default,
    CommandLine,
    VarFile(PathBuf),
}

/// One resource block.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Its address in state and plans: the key under `resources:`, or `key["instance"]` for each
    /// instance of a resource with `for_each`.
    pub name: String,
    pub type_name: String,
    /// The resource's key in the stack file.
    pub loc: Loc,
    /// Every field of the spec that has a value (written, from the `file:` base, or the spec's default),
    /// in spec order. Paths are absolute.
    pub inputs: IndexMap<String, Expr>,
    /// `depends_on:` entries, each a resource name.
    pub depends_on: Vec<(String, Loc)>,
    /// The Azure ML YAML named by `file:`, if any (absolute).
    pub base_file: Option<PathBuf>,
    /// `moved: { from: OLD }`: the address the resource had in state before it was renamed in the
    /// file. Never an address the stack still has.
    pub moved_from: Option<(String, Loc)>,
    /// `import: ID`: the cloud id of an existing object the next apply adopts at this address.
    pub import: Option<(String, Loc)>,
}

/// A stack output.
#[derive(Debug, Clone)]
pub struct Output {
    pub value: Expr,
    pub description: Option<String>,
    pub sensitive: bool,
    pub loc: Loc,
}

/// A value that may still contain references to other resources. `Debug` hides a sensitive value.
#[derive(Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub loc: Loc,
    /// Derived from a sensitive variable (or a sensitive field): never printed.
    pub sensitive: bool,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Expr");
        if self.sensitive {
            d.field("kind", &"(sensitive)");
        } else {
            d.field("kind", &self.kind);
        }
        d.field("loc", &self.loc)
            .field("sensitive", &self.sensitive)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    /// A local path, resolved against the folder of the file that names it.
    Path(PathBuf),
    List(Vec<Expr>),
    Map(IndexMap<String, Expr>),
    /// A value that is exactly one reference: it keeps the referenced value's type.
    Ref(Reference),
    /// A string with references interpolated: `mistore${var.suffix}` after variables are substituted
    /// leaves only resource references as parts.
    Template(Vec<TemplatePart>),
}

#[derive(Debug, Clone)]
pub enum TemplatePart {
    Text(String),
    Ref(Reference),
}

/// `${resource.path}`: an attribute or field of another resource.
#[derive(Debug, Clone)]
pub struct Reference {
    pub resource: String,
    /// Dotted path after the resource name, e.g. `identity.principal_id`.
    pub path: String,
    pub loc: Loc,
}

impl Expr {
    /// Every resource reference inside this value, depth first.
    pub fn references(&self) -> Vec<&Reference> {
        let mut out = Vec::new();
        self.collect_refs(&mut out);
        out
    }

    fn collect_refs<'a>(&'a self, out: &mut Vec<&'a Reference>) {
        match &self.kind {
            ExprKind::Ref(r) => out.push(r),
            ExprKind::Template(parts) => out.extend(parts.iter().filter_map(|p| match p {
                TemplatePart::Ref(r) => Some(r),
                TemplatePart::Text(_) => None,
            })),
            ExprKind::List(items) => items.iter().for_each(|e| e.collect_refs(out)),
            ExprKind::Map(entries) => entries.values().for_each(|e| e.collect_refs(out)),
            _ => {}
        }
    }

    /// Resolves the value with `lookup` giving the value of a reference, or `None` when it is not known
    /// yet (computed by the cloud during apply). Returns `None` if any reference is unknown.
    pub fn resolve(
        &self,
        lookup: &dyn Fn(&Reference) -> Option<serde_json::Value>,
    ) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match &self.kind {
            ExprKind::Null => J::Null,
            ExprKind::Bool(b) => J::Bool(*b),
            ExprKind::Int(i) => J::from(*i),
            ExprKind::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            ExprKind::String(s) => J::String(s.clone()),
            ExprKind::Path(p) => J::String(p.display().to_string()),
            ExprKind::List(items) => J::Array(
                items
                    .iter()
                    .map(|e| e.resolve(lookup))
                    .collect::<Option<_>>()?,
            ),
            ExprKind::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, e)| Some((k.clone(), e.resolve(lookup)?)))
                    .collect::<Option<_>>()?,
            ),
            ExprKind::Ref(r) => lookup(r)?,
            ExprKind::Template(parts) => {
                let mut s = String::new();
                for part in parts {
                    match part {
                        TemplatePart::Text(t) => s.push_str(t),
                        TemplatePart::Ref(r) => match lookup(r)? {
                            J::String(v) => s.push_str(&v),
                            J::Null => {}
                            other => s.push_str(&other.to_string()),
                        },
                    }
                }
                J::String(s)
            }
        })
    }

    /// Whether this value or anything inside it is sensitive.
    pub(crate) fn is_sensitive(&self) -> bool {
        self.sensitive
            || match &self.kind {
                ExprKind::List(items) => items.iter().any(Expr::is_sensitive),
                ExprKind::Map(entries) => entries.values().any(Expr::is_sensitive),
                _ => false,
            }
    }
}

impl Resource {
    /// Every reference in the resource's inputs.
    pub fn references(&self) -> Vec<&Reference> {
        self.inputs.values().flat_map(Expr::references).collect()
    }

    /// The input at a dotted path, looking inside object and map values.
    pub fn input(&self, path: &str) -> Option<&Expr> {
        let mut parts = path.split('.');
        let mut expr = self.inputs.get(parts.next()?)?;
        for part in parts {
            match &expr.kind {
                ExprKind::Map(entries) => expr = entries.get(part)?,
                _ => return None,
            }
        }
        Some(expr)
    }
}
