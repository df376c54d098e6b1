//! What is special about online deployments: the local code and model folders are uploaded to the
//! workspace's default datastore under `LocalUpload/{content hash}/{folder}/…` (skipped when already
//! there) and registered as code/model/environment versions named after the deployment. Code and
//! environment versions are the short content hash (any string is a valid version for them). Model
//! versions must be positive integers on Azure, so a model is content-addressed through the hash it
//! records in `properties.properties`: an existing version with the same hash is reused, else the next
//! integer is registered; the observer compares the live model's recorded hash, never a predicted id.
//! A single-file `code` path is uploaded into a folder of its own (a code version names a folder).
//! Then the deployment is PUT (pattern B); a `Failed` deployment's error carries the tail of its log. A
//! change of `instance_count` alone is a PATCH of `sku.capacity` (pattern C). `traffic` is read back
//! from the endpoint's map but never set here: the planner gathers the shares of an endpoint's
//! deployments into one map, set by its own step (`online_endpoint::set_map`).
//!
//! Everything else about the body — defaults, wire spellings, the request settings and probes with their
//! ISO 8601 durations, the fixed `sku.name` and compute type — is the spec's, placed and read back by the
//! common path; this file only fills the fields the spec marks `custom` (the asset ids, the traffic share).
//! Datastore secrets are only used to sign uploads; they are never logged or returned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::common::{
    Ctx, arm_path, get_path, input_or_default, required_str, set_path, spec_body, spec_observe,
};
use super::datastore::{self, DATASTORE, Datastore};
use super::online_endpoint;
use crate::provider::contract::{Observed, ResourceRequest, ResourceType, Result};
use crate::provider::error::{ErrorKind, ProviderError};
use crate::provider::ids::same_id;
use crate::specs::{ResourceSpec, registered_version};

const T: ResourceType = ResourceType::OnlineDeployment;

// ---------------------------------------------------------------------------------------------------
// Local content: hashing folders

/// Files of a folder (or a single file), relative paths with `/`, sorted. `__pycache__` and `.git` are
/// skipped.
fn collect_files(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let meta = std::fs::metadata(root)
        .map_err(|e| ProviderError::invalid(format!("cannot read {}: {e}", root.display())))?;
    if meta.is_file() {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(vec![(name, root.to_path_buf())]);
    }
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let n = e.file_name().to_string_lossy();
            n != "__pycache__" && n != ".git"
        })
    {
        let entry = entry
            .map_err(|e| ProviderError::invalid(format!("cannot read {}: {e}", root.display())))?;
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, entry.path().to_path_buf()));
        }
    }
    Ok(out)
}

/// A local folder (or file) and its content hash.
#[derive(Debug, Clone)]
struct LocalAsset {
    /// The folder's (or file's) own name, kept in the upload path.
    folder: String,
    files: Vec<(String, PathBuf)>,
    hash: String,
    is_file: bool,
}

impl LocalAsset {
    fn load(root: &str) -> Result<Self> {
        let root = PathBuf::from(root);
        let files = collect_files(&root)?;
        let mut h = Sha256::new();
        for (rel, path) in &files {
            let data = std::fs::read(path).map_err(|e| {
                ProviderError::invalid(format!("cannot read {}: {e}", path.display()))
            })?;
            h.update(rel.as_bytes());
            h.update([0]);
            h.update((data.len() as u64).to_le_bytes());
            h.update(&data);
        }
        let folder = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        let is_file = root.is_file();
        Ok(Self {
            folder,
            files,
            hash: hex::encode(h.finalize()),
            is_file,
        })
    }

    /// A code asset: a folder. A single file is uploaded into a folder of its own, named after the
    /// folder that holds it, so the scoring script (named relative to the code folder) still resolves:
    /// a code version's `codeUri` names a folder (`Azure/azure-rest-api-specs:
    /// specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/stable/2025-12-01/openapi.json`,
    /// `CodeVersionProperties.codeUri`: "Uri where code is located"; the CLI turns a file into its
    /// folder).
    fn load_folder(root: &str) -> Result<Self> {
        let mut asset = Self::load(root)?;
        if asset.is_file {
            asset.folder = Path::new(root)
                .canonicalize()
                .ok()
                .as_deref()
                .and_then(Path::parent)
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "code".into());
            asset.is_file = false;
        }
        Ok(asset)
    }

    /// The version derived from the content (code and environment versions; model versions are
    /// integers, see [`pick_model_version`]).
    fn version(&self) -> String {
        self.hash[..12].to_owned()
    }

    /// `LocalUpload/{hash}/{folder}` — the folder (or file) path in the datastore container.
    fn prefix(&self) -> String {
        format!("LocalUpload/{}/{}", &self.hash[..32], self.folder)
    }

    fn blob_name(&self, rel: &str) -> String {
        if self.is_file {
            self.prefix()
        } else {
            format!("{}/{rel}", self.prefix())
        }
    }
}

/// `azureml:NAME:VERSION` → (name, version).
fn registered(value: &Value) -> Option<(String, String)> {
    let s = value.as_str()?.strip_prefix("azureml:")?;
    let (name, version) = s.rsplit_once(':')?;
    (!name.is_empty() && !version.is_empty()).then(|| (name.to_owned(), version.to_owned()))
}

// ---------------------------------------------------------------------------------------------------
// The workspace datastore (see `datastore`)

/// Uploads the asset to the datastore unless every file is already there with the same MD5.
async fn upload(ds: &Datastore, asset: &LocalAsset) -> Result<()> {
    let files: Vec<(String, PathBuf)> = asset
        .files
        .iter()
        .map(|(rel, path)| (asset.blob_name(rel), path.clone()))
        .collect();
    ds.upload(&asset.prefix(), &files).await
}

/// PUTs an asset version unless it exists (versions are immutable; the same content gives the same
/// version). Returns its ARM id.
async fn ensure_version(
    ctx: &Ctx,
    kind: &str,
    name: &str,
    version: &str,
    body: Value,
) -> Result<String> {
    let api = ctx.api_version(ResourceType::OnlineEndpoint)?;
    let path = format!(
        "{}/{kind}/{name}/versions/{version}",
        ctx.config.workspace_id()
    );
    if let Some(existing) = ctx.arm.get(&path, &api).await? {
        return Ok(existing
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or(path));
    }
    let done = ctx
        .arm
        .put(&path, &api, &body, &ctx.config.lro_for(T), &|_| {})
        .await?;
    Ok(done
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or(path))
}

/// The keys of the content hash an asset version records in `properties.properties` (a string map
/// the service keeps as sent: `ResourceBase.properties` in `Azure/azure-rest-api-specs:
/// specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/stable/2025-12-01/openapi.json`;
/// the Azure ML CLI records its own hashes of code the same way).
const HASH_KEY: &str = "hash_sha256";
const HASH_VERSION_KEY: &str = "hash_version";
const HASH_VERSION: &str = "stackform-1";

/// How often a model registration is retried when another run registered the chosen version first.
const MODEL_VERSION_ATTEMPTS: usize = 5;

/// The content hash a registered asset version recorded, if stackform registered it.
fn recorded_hash(version: &Value) -> Option<&str> {
    let props = version.pointer("/properties/properties")?;
    (props.get(HASH_VERSION_KEY).and_then(Value::as_str) == Some(HASH_VERSION))
        .then(|| props.get(HASH_KEY).and_then(Value::as_str))
        .flatten()
}

/// Which model version stands for some content.
#[derive(Debug, PartialEq)]
enum ModelPick {
    /// A registered version (its ARM id) recorded the same content hash.
    Reuse(String),
    /// No version has this content: register this one (the highest integer version plus one).
    Register(u64),
}

/// Model versions are positive integers on Azure (`ModelVersionOutOfRange`, "Model version must be a
/// positive integer"; the definition types the version as a plain string), so content addressing goes
/// through the recorded hash: reuse the version that recorded `hash`, else `max + 1` (1 for the first).
fn pick_model_version(versions: &[Value], hash: &str) -> ModelPick {
    if let Some(v) = versions.iter().find(|v| recorded_hash(v) == Some(hash))
        && let Some(id) = v.get("id").and_then(Value::as_str)
    {
        return ModelPick::Reuse(id.to_owned());
    }
    let max = versions
        .iter()
        .filter_map(|v| v.get("name").and_then(Value::as_str)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    ModelPick::Register(max + 1)
}

/// Registers the model content `hash` under `name`, or finds the version that already holds it.
/// Lists the versions (every page), reuses the one with the same recorded hash, else PUTs `max + 1`.
/// When that PUT is refused because another run registered the same number in the meantime, the
/// version is read back: the same hash is reused, another one means the race was lost and the choice
/// is made again. Returns the version's ARM id.
async fn ensure_model_version(ctx: &Ctx, name: &str, hash: &str, body: &Value) -> Result<String> {
    let api = ctx.api_version(ResourceType::OnlineEndpoint)?;
    let base = format!("{}/models/{name}/versions", ctx.config.workspace_id());
    let id_of = |done: &Value, path: &str| {
        done.get("id")
            .and_then(Value::as_str)
            .map_or_else(|| path.to_owned(), str::to_owned)
    };
    for _ in 0..MODEL_VERSION_ATTEMPTS {
        let versions = match ctx.arm.list(&base, &api, &[]).await {
            Ok(v) => v,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        let n = match pick_model_version(&versions, hash) {
            ModelPick::Reuse(id) => return Ok(id),
            ModelPick::Register(n) => n,
        };
        let path = format!("{base}/{n}");
        match ctx
            .arm
            .put(&path, &api, body, &ctx.config.lro_for(T), &|_| {})
            .await
        {
            Ok(done) => return Ok(id_of(&done, &path)),
            Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::UserError) => {
                match ctx.arm.get(&path, &api).await? {
                    Some(v) if recorded_hash(&v) == Some(hash) => return Ok(id_of(&v, &path)),
                    Some(_) => {
                        tracing::debug!(
                            version = n,
                            "model version taken by another run; choosing again"
                        );
                    }
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(ProviderError::new(
        ErrorKind::Conflict,
        format!(
            "could not register model {name}: another run registered each chosen version first ({MODEL_VERSION_ATTEMPTS} attempts)"
        ),
    ))
}

/// The content hash the live deployment's model version recorded, when that version is one stackform
/// registered for this deployment (read from the cloud: the version number says nothing about content).
async fn live_model_hash(
    ctx: &Ctx,
    inputs: &Map<String, Value>,
    body: &Value,
) -> Result<Option<String>> {
    if inputs.get("model").and_then(registered).is_some() {
        return Ok(None);
    }
    let spec = ctx.spec(T)?;
    let Some(id) = get_path(body, &arm_path(spec, "model")?).and_then(Value::as_str) else {
        return Ok(None);
    };
    let Ok(name) = asset_name(inputs, "model") else {
        return Ok(None);
    };
    let ours = format!("{}/models/{name}/versions/", ctx.config.workspace_id());
    if !id
        .to_ascii_lowercase()
        .starts_with(&ours.to_ascii_lowercase())
    {
        return Ok(None);
    }
    let api = ctx.api_version(ResourceType::OnlineEndpoint)?;
    Ok(ctx
        .arm
        .get(id, &api)
        .await?
        .as_ref()
        .and_then(recorded_hash)
        .map(str::to_owned))
}

fn asset_id(ctx: &Ctx, kind: &str, name: &str, version: &str) -> String {
    format!(
        "{}/{kind}/{name}/versions/{version}",
        ctx.config.workspace_id()
    )
}

/// Asset names: `{endpoint}-{deployment}-{code|model|env}`.
fn asset_name(inputs: &Map<String, Value>, suffix: &str) -> Result<String> {
    Ok(format!(
        "{}-{}-{suffix}",
        required_str(inputs, "endpoint")?,
        required_str(inputs, "name")?
    ))
}

fn model_path(inputs: &Map<String, Value>) -> Option<&str> {
    inputs
        .get("model")
        .and_then(|m| m.get("path"))
        .and_then(Value::as_str)
}

/// `code_configuration.code` given as a registered version (`azureml:NAME:VERSION`), as a rollback
/// restores a deployment to the code it ran before even when the local folder has changed since.
fn code_ref(inputs: &Map<String, Value>) -> Option<(String, String)> {
    inputs
        .get("code_configuration")
        .and_then(|c| c.get("code"))
        .and_then(registered)
}

fn code_path(inputs: &Map<String, Value>) -> Result<&str> {
    inputs
        .get("code_configuration")
        .and_then(|c| c.get("code"))
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::invalid("missing required input `code_configuration.code`"))
}

/// The environment's image and conda text, and the version derived from them.
pub(super) fn environment_content(
    ctx: &Ctx,
    inputs: &Map<String, Value>,
) -> Result<Option<(String, Option<String>, String)>> {
    let Some(env) = inputs.get("environment").filter(|e| e.is_object()) else {
        return Ok(None);
    };
    let image = env
        .get("image")
        .and_then(Value::as_str)
        .or_else(|| {
            ctx.spec(T)
                .ok()?
                .field("environment.image")?
                .default
                .as_ref()?
                .as_str()
        })
        .ok_or_else(|| ProviderError::invalid("missing required input `environment.image`"))?
        .to_owned();
    let conda = match env.get("conda_file").and_then(Value::as_str) {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| ProviderError::invalid(format!("cannot read conda file {p}: {e}")))?,
        ),
        None => None,
    };
    let mut h = Sha256::new();
    h.update(image.as_bytes());
    h.update([0]);
    h.update(conda.as_deref().unwrap_or_default().as_bytes());
    let version = hex::encode(h.finalize())[..12].to_owned();
    Ok(Some((image, conda, version)))
}

/// The asset ids the inputs stand for, computed without any call (for diffing on read). A local model
/// stands for its content hash, not an id: its version number is only known to the cloud.
struct ExpectedIds {
    model: Option<String>,
    model_hash: Option<String>,
    code: Option<String>,
    environment: Option<String>,
}

fn expected_ids(ctx: &Ctx, inputs: &Map<String, Value>) -> ExpectedIds {
    let model = inputs
        .get("model")
        .and_then(registered)
        .map(|(n, ver)| asset_id(ctx, "models", &n, &ver));
    let model_hash = match model {
        Some(_) => None,
        None => model_path(inputs)
            .and_then(|p| LocalAsset::load(p).ok())
            .map(|a| a.hash),
    };
    let code = match code_ref(inputs) {
        Some((n, ver)) => Some(asset_id(ctx, "codes", &n, &ver)),
        None => code_path(inputs)
            .ok()
            .and_then(|p| LocalAsset::load_folder(p).ok())
            .and_then(|a| {
                asset_name(inputs, "code")
                    .ok()
                    .map(|n| asset_id(ctx, "codes", &n, &a.version()))
            }),
    };
    let environment = match inputs.get("environment") {
        Some(v) if registered(v).is_some() => {
            registered(v).map(|(n, ver)| asset_id(ctx, "environments", &n, &ver))
        }
        _ => environment_content(ctx, inputs)
            .ok()
            .flatten()
            .and_then(|(_, _, v)| {
                asset_name(inputs, "env")
                    .ok()
                    .map(|n| asset_id(ctx, "environments", &n, &v))
            }),
    };
    ExpectedIds {
        model,
        model_hash,
        code,
        environment,
    }
}

/// The ARM ids of the registered versions a deployment runs.
pub(super) struct AssetIds {
    pub(super) model: String,
    pub(super) code: String,
    pub(super) environment: String,
}

/// Uploads and registers what the inputs reference.
async fn prepare_assets(ctx: &Ctx, req: &ResourceRequest) -> Result<AssetIds> {
    let inputs = &req.inputs;
    let code = match code_ref(inputs) {
        Some(_) => None,
        None => Some(LocalAsset::load_folder(code_path(inputs)?)?),
    };
    let model_local = match inputs.get("model") {
        Some(v) if registered(v).is_some() => None,
        _ => Some(LocalAsset::load(model_path(inputs).ok_or_else(|| {
            ProviderError::invalid("missing required input `model`")
        })?)?),
    };
    req.report("UploadingAssets");
    let ds = datastore::open(ctx).await?;
    let code_id = match (&code, code_ref(inputs)) {
        (_, Some((n, v))) => asset_id(ctx, "codes", &n, &v),
        (Some(code), None) => {
            upload(&ds, code).await?;
            ensure_version(
                ctx,
                "codes",
                &asset_name(inputs, "code")?,
                &code.version(),
                json!({"properties": {
                    "codeUri": format!("{}/{}", ds.container_url.trim_end_matches('/'), code.prefix()),
                    "isAnonymous": false,
                    "properties": {HASH_KEY: code.hash, HASH_VERSION_KEY: HASH_VERSION},
                }}),
            )
            .await?
        }
        (None, None) => {
            return Err(ProviderError::invalid(
                "missing required input `code_configuration.code`",
            ));
        }
    };
    let model_id = match (&model_local, inputs.get("model").and_then(registered)) {
        (_, Some((n, v))) => asset_id(ctx, "models", &n, &v),
        (Some(model), None) => {
            upload(&ds, model).await?;
            let c = &ctx.config;
            let uri = format!(
                "azureml://subscriptions/{}/resourceGroups/{}/workspaces/{}/datastores/{DATASTORE}/paths/{}",
                c.subscription_id,
                c.resource_group,
                c.workspace,
                model.prefix()
            );
            ensure_model_version(
                ctx,
                &asset_name(inputs, "model")?,
                &model.hash,
                &json!({"properties": {
                    "modelUri": uri, "modelType": "custom_model", "flavors": {}, "isAnonymous": false,
                    "properties": {HASH_KEY: model.hash, HASH_VERSION_KEY: HASH_VERSION},
                }}),
            )
            .await?
        }
        (None, None) => return Err(ProviderError::invalid("missing required input `model`")),
    };
    let env_id = match inputs.get("environment").and_then(registered) {
        Some((n, v)) => asset_id(ctx, "environments", &n, &v),
        None => {
            let (image, conda, version) = environment_content(ctx, inputs)?
                .ok_or_else(|| ProviderError::invalid("missing required input `environment`"))?;
            let mut props = json!({"image": image, "osType": "Linux", "isAnonymous": false});
            if let Some(c) = conda {
                props["condaFile"] = json!(c);
            }
            ensure_version(
                ctx,
                "environments",
                &asset_name(inputs, "env")?,
                &version,
                json!({ "properties": props }),
            )
            .await?
        }
    };
    Ok(AssetIds {
        model: model_id,
        code: code_id,
        environment: env_id,
    })
}

// ---------------------------------------------------------------------------------------------------
// Body and read-back

/// The deployment body: the spec's mapping (defaults, wire spellings, durations, the request settings
/// and probes at their paths), the workspace's region, and the registered asset versions.
pub(super) fn deployment_body(
    ctx: &Ctx,
    inputs: &Map<String, Value>,
    location: &str,
    ids: &AssetIds,
) -> Result<Value> {
    inputs
        .get("code_configuration")
        .and_then(|c| c.get("scoring_script"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ProviderError::invalid("missing required input `code_configuration.scoring_script`")
        })?;
    let spec = ctx.spec(T)?;
    let mut body = spec_body(ctx, spec, inputs);
    body["location"] = json!(location);
    for (field, id) in [
        ("model", &ids.model),
        ("code_configuration.code", &ids.code),
        ("environment", &ids.environment),
    ] {
        set_path(&mut body, &arm_path(spec, field)?, json!(id));
    }
    Ok(body)
}

/// The deployment as read back (see [`observe_with`]), after reading the content hash its model
/// version recorded.
async fn observe(ctx: &Ctx, req: &ResourceRequest, body: &Value, traffic: u32) -> Result<Observed> {
    let model_hash = live_model_hash(ctx, &req.inputs, body).await?;
    observe_with(ctx, req, body, traffic, model_hash.as_deref())
}

/// The deployment as read back: the spec's mapping, the endpoint's `traffic` share, and the assets.
/// An asset reads back in the request's form (a local folder) when the live version is the one that
/// folder produces — for a model, when the live version recorded the folder's content hash
/// (`live_model_hash`) — else as the live version (`azureml:NAME:VERSION`).
fn observe_with(
    ctx: &Ctx,
    req: &ResourceRequest,
    body: &Value,
    traffic: u32,
    live_model_hash: Option<&str>,
) -> Result<Observed> {
    let spec = ctx.spec(T)?;
    let d = &req.inputs;
    let mut obs = spec_observe(ctx, spec, d, body);
    obs.inputs.insert("traffic".into(), json!(traffic));
    let expected = expected_ids(ctx, d);
    let live_id = |field: &str| -> Result<Option<String>> {
        Ok(get_path(body, &arm_path(spec, field)?)
            .and_then(Value::as_str)
            .map(str::to_owned))
    };
    let as_ref = |id: &str| json!(registered_version(id).unwrap_or_else(|| id.to_owned()));
    let pick = |live: Option<String>, want: &Option<String>, desired: Option<&Value>| match (
        live, want, desired,
    ) {
        (Some(l), Some(w), Some(dv)) if same_id(&l, w) => Some(dv.clone()),
        (Some(l), _, _) => Some(as_ref(&l)),
        _ => None,
    };
    let live_model = live_id("model")?;
    let model = match (&expected.model_hash, live_model_hash, d.get("model")) {
        (Some(want), Some(live), Some(dv)) if want == live && live_model.is_some() => {
            Some(dv.clone())
        }
        _ => pick(live_model, &expected.model, d.get("model")),
    };
    if let Some(m) = model {
        obs.inputs.insert("model".into(), m);
    }
    if let Some(e) = pick(
        live_id("environment")?,
        &expected.environment,
        d.get("environment"),
    ) {
        obs.inputs.insert("environment".into(), e);
    }
    let live_code = live_id("code_configuration.code")?;
    let code = match (&live_code, &expected.code) {
        (Some(l), Some(w)) if same_id(l, w) => d
            .get("code_configuration")
            .and_then(|c| c.get("code"))
            .cloned()
            .unwrap_or(Value::Null),
        _ => live_code.as_deref().map(as_ref).unwrap_or(Value::Null),
    };
    if let Some(cc) = obs
        .inputs
        .entry("code_configuration")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        cc.insert("code".into(), code);
    }
    Ok(obs)
}

// ---------------------------------------------------------------------------------------------------
// Operations

fn path(ctx: &Ctx, inputs: &Map<String, Value>) -> Result<String> {
    ctx.path(T, inputs)
}

async fn endpoint_traffic(
    ctx: &Ctx,
    inputs: &Map<String, Value>,
) -> Result<(BTreeMap<String, u32>, u32)> {
    let endpoint = required_str(inputs, "endpoint")?;
    let name = required_str(inputs, "name")?;
    let map = online_endpoint::traffic(ctx, endpoint)
        .await?
        .unwrap_or_default();
    let mine = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map_or(0, |(_, v)| *v);
    Ok((map, mine))
}

/// The endpoint's traffic split, read once for all the deployments of one listing.
pub(super) async fn listed_traffic(
    ctx: &Ctx,
    inputs: &Map<String, Value>,
) -> Result<BTreeMap<String, u32>> {
    Ok(endpoint_traffic(ctx, inputs).await?.0)
}

/// A listed deployment (OnlineDeployments_List answers the same OnlineDeployment definition as GET)
/// observed with its share of `traffic`.
pub(super) async fn observe_listed(
    ctx: &Ctx,
    req: &ResourceRequest,
    body: &Value,
    traffic: &BTreeMap<String, u32>,
) -> Result<Observed> {
    let name = required_str(&req.inputs, "name")?;
    let share = traffic
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map_or(0, |(_, v)| *v);
    observe(ctx, req, body, share).await
}

pub async fn read(ctx: &Ctx, req: &ResourceRequest) -> Result<Option<Observed>> {
    let p = match &req.cloud_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => path(ctx, &req.inputs)?,
    };
    let Some(body) = ctx.arm.get(&p, &ctx.api_version(T)?).await? else {
        return Ok(None);
    };
    let (_, traffic) = endpoint_traffic(ctx, &req.inputs).await?;
    observe(ctx, req, &body, traffic).await.map(Some)
}

/// Full create or redeploy: assets, then the deployment PUT. Traffic is not touched: the endpoint's
/// whole map is set by its own step (a new deployment starts with no share).
pub async fn put(ctx: &Ctx, req: &ResourceRequest) -> Result<Observed> {
    let ids = prepare_assets(ctx, req).await?;
    let location = ctx.workspace_location().await?;
    let body = deployment_body(ctx, &req.inputs, &location, &ids)?;
    let p = path(ctx, &req.inputs)?;
    let api = ctx.api_version(T)?;
    let report = |s: &str| req.report(s);
    let done = match ctx
        .arm
        .put(&p, &api, &body, &ctx.config.lro_for(T), &report)
        .await
    {
        Ok(d) => d,
        Err(e) if e.kind == ErrorKind::Failed => {
            return Err(with_log_tail(ctx, &req.inputs, e).await);
        }
        Err(e) => return Err(e),
    };
    let (_, traffic) = endpoint_traffic(ctx, &req.inputs).await?;
    observe(ctx, req, &done, traffic).await
}

/// Update, decided against the live deployment (not `prior`): instance count only → PATCH
/// `sku.capacity`; nothing but traffic → nothing (the endpoint's map is its own step); anything else,
/// or a deployment that is not `Succeeded` → a full PUT.
pub async fn update(ctx: &Ctx, req: &ResourceRequest) -> Result<Observed> {
    let spec = ctx.spec(T)?;
    let mut after = req.inputs.clone();
    for k in ["instance_count", "traffic"] {
        after.remove(k);
    }
    // Compare the rest as the cloud would read it back.
    let current = read(ctx, req).await?;
    // A deployment that is not healthy (e.g. `Failed` while a role assignment propagated) is always
    // redeployed, even when its inputs already match.
    let same_rest = match &current {
        Some(obs)
            if obs
                .outputs
                .get("provisioning_state")
                .and_then(Value::as_str)
                == Some("Succeeded") =>
        {
            let mut live = obs.inputs.clone();
            live.remove("instance_count");
            live.remove("traffic");
            after
                .iter()
                .all(|(k, v)| v.is_null() || live.get(k) == Some(v))
        }
        _ => false,
    };
    if !same_rest {
        return put(ctx, req).await;
    }
    let count_field = spec
        .field("instance_count")
        .ok_or_else(|| ProviderError::invalid("the spec has no `instance_count`"))?;
    let want_count = input_or_default(count_field, &req.inputs, "instance_count");
    let live_count = current
        .as_ref()
        .and_then(|o| input_or_default(count_field, &o.inputs, "instance_count"));
    let p = path(ctx, &req.inputs)?;
    let api = ctx.api_version(T)?;
    let body = if want_count != live_count {
        let report = |s: &str| req.report(s);
        req.report("Scaling");
        let patch = scale_patch(spec, want_count.cloned().unwrap_or(Value::Null))?;
        match ctx
            .arm
            .patch(&p, &api, &patch, &ctx.config.lro_for(T), &report)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::Failed => {
                return Err(with_log_tail(ctx, &req.inputs, e).await);
            }
            Err(e) => return Err(e),
        }
        ctx.arm.get(&p, &api).await?.ok_or_else(|| {
            ProviderError::new(ErrorKind::NotFound, "deployment vanished after scaling")
        })?
    } else {
        ctx.arm
            .get(&p, &api)
            .await?
            .ok_or_else(|| ProviderError::new(ErrorKind::NotFound, "deployment does not exist"))?
    };
    let (_, traffic) = endpoint_traffic(ctx, &req.inputs).await?;
    observe(ctx, req, &body, traffic).await
}

/// The PATCH that scales a deployment: the object holding `instance_count`'s ARM path (`sku`), with the
/// spec's fixed values inside it and the new count.
pub(super) fn scale_patch(spec: &ResourceSpec, count: Value) -> Result<Value> {
    let capacity = arm_path(spec, "instance_count")?;
    let holder = capacity.split('.').next().unwrap_or_default();
    let mut patch = json!({});
    for (path, value) in &spec.arm.fixed {
        if path.split('.').next() == Some(holder) {
            set_path(&mut patch, path, value.clone());
        }
    }
    set_path(&mut patch, &capacity, count);
    Ok(patch)
}

/// Deletes the deployment (pattern C). Its traffic share must already be 0 — the endpoint's map is
/// set by its own step before this delete (Azure refuses to delete a deployment that has traffic).
pub async fn delete(ctx: &Ctx, req: &ResourceRequest) -> Result<()> {
    let endpoint = required_str(&req.inputs, "endpoint")?;
    if online_endpoint::traffic(ctx, endpoint).await?.is_none() {
        // The endpoint is gone, and with it every deployment.
        return Ok(());
    }
    let p = match &req.cloud_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => path(ctx, &req.inputs)?,
    };
    let report = |s: &str| req.report(s);
    ctx.arm
        .delete(&p, &ctx.api_version(T)?, &ctx.config.lro_for(T), &report)
        .await
}

/// The deployment's container log (`getLogs`), the last `tail` lines.
pub async fn get_logs(ctx: &Ctx, endpoint: &str, deployment: &str, tail: u32) -> Result<String> {
    let mut inputs = Map::new();
    inputs.insert("endpoint".into(), json!(endpoint));
    inputs.insert("name".into(), json!(deployment));
    let p = format!("{}/getLogs", path(ctx, &inputs)?);
    let body = ctx
        .arm
        .post(
            &p,
            &ctx.api_version(T)?,
            Some(&json!({"containerType": "InferenceServer", "tail": tail})),
        )
        .await?;
    Ok(body
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

/// Adds the tail of the deployment log to a `Failed` error (best effort).
async fn with_log_tail(
    ctx: &Ctx,
    inputs: &Map<String, Value>,
    mut e: ProviderError,
) -> ProviderError {
    let (Ok(endpoint), Ok(name)) = (
        required_str(inputs, "endpoint"),
        required_str(inputs, "name"),
    ) else {
        return e;
    };
    if let Ok(log) = get_logs(ctx, endpoint, name, 30).await
        && !log.trim().is_empty()
    {
        e.message.push_str("\n--- deployment log (tail) ---\n");
        e.message.push_str(log.trim_end());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_hash_is_stable_and_content_sensitive() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("model/sub")).unwrap();
        std::fs::write(dir.path().join("model/a.txt"), "one").unwrap();
        std::fs::write(dir.path().join("model/sub/b.txt"), "two").unwrap();
        std::fs::create_dir_all(dir.path().join("model/__pycache__")).unwrap();
        std::fs::write(dir.path().join("model/__pycache__/x.pyc"), "junk").unwrap();
        let root = dir.path().join("model");
        let a = LocalAsset::load(root.to_str().unwrap()).unwrap();
        assert_eq!(
            a.files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
            vec!["a.txt", "sub/b.txt"]
        );
        assert_eq!(a.folder, "model");
        assert!(a.prefix().starts_with("LocalUpload/") && a.prefix().ends_with("/model"));
        assert_eq!(
            a.blob_name("sub/b.txt"),
            format!("{}/sub/b.txt", a.prefix())
        );
        let again = LocalAsset::load(root.to_str().unwrap()).unwrap();
        assert_eq!(a.version(), again.version());
        std::fs::write(dir.path().join("model/a.txt"), "changed").unwrap();
        assert_ne!(
            LocalAsset::load(root.to_str().unwrap()).unwrap().version(),
            a.version()
        );
    }

    fn ctx() -> Ctx {
        let t = crate::provider::pipeline::fake::FakeTransport::new(vec![]);
        let c = std::sync::Arc::new(crate::provider::pipeline::fake::FakeClock::default());
        crate::provider::resources::common::tests::ctx_with(
            crate::provider::resources::common::tests::azure_config(),
            &t,
            &c,
        )
    }

    fn ids() -> AssetIds {
        AssetIds {
            model: "/ws/models/m/versions/1".into(),
            code: "/ws/codes/c/versions/2".into(),
            environment: "/ws/environments/e/versions/3".into(),
        }
    }

    #[test]
    fn settings_round_trip_through_arm_spelling() {
        let ctx = ctx();
        let inputs = serde_json::from_value::<Map<String, Value>>(json!({
            "name": "blue", "endpoint": "ep",
            "code_configuration": {"code": "./code", "scoring_script": "score.py"},
            "liveness_probe": {"initial_delay": 5, "period": 10, "failure_threshold": 3},
            "request_settings": {"request_timeout_ms": 1500, "max_concurrent_requests_per_instance": 2},
        }))
        .unwrap();
        let body = deployment_body(&ctx, &inputs, "westus", &ids()).unwrap();
        assert_eq!(
            body["properties"]["livenessProbe"],
            json!({"initialDelay": "PT5S", "period": "PT10S", "timeout": "PT2S", "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(
            body["properties"]["requestSettings"],
            json!({"requestTimeout": "PT1.5S", "maxConcurrentRequestsPerInstance": 2, "maxQueueWait": "PT0.5S"})
        );
        assert!(body["properties"].get("readinessProbe").is_none());
        assert_eq!(body["location"], "westus");
        assert_eq!(
            body["properties"]["codeConfiguration"],
            json!({"codeId": "/ws/codes/c/versions/2", "scoringScript": "score.py"})
        );
        assert_eq!(body["properties"]["model"], "/ws/models/m/versions/1");
        assert_eq!(
            body["properties"]["environmentId"],
            "/ws/environments/e/versions/3"
        );
        assert_eq!(body["sku"], json!({"name": "Default", "capacity": 1}));
        let spec = ctx.spec(T).unwrap();
        let back = spec_observe(&ctx, spec, &inputs, &body);
        assert_eq!(
            back.inputs["liveness_probe"],
            json!({"initial_delay": 5, "period": 10, "timeout": 2, "success_threshold": 1, "failure_threshold": 3})
        );
        assert_eq!(
            back.inputs["request_settings"],
            json!({"request_timeout_ms": 1500, "max_concurrent_requests_per_instance": 2, "max_queue_wait_ms": 500})
        );
        assert!(!back.inputs.contains_key("readiness_probe"));
        assert_eq!(back.inputs["egress_public_network_access"], "enabled");
    }

    #[test]
    fn scaling_patches_only_the_sku() {
        let ctx = ctx();
        let patch = scale_patch(ctx.spec(T).unwrap(), json!(3)).unwrap();
        assert_eq!(patch, json!({"sku": {"name": "Default", "capacity": 3}}));
    }

    fn version(name: &str, hash: &str) -> Value {
        json!({"id": format!("/ws/models/m/versions/{name}"), "name": name,
            "properties": {"modelUri": "azureml://x", "properties": {HASH_KEY: hash, HASH_VERSION_KEY: HASH_VERSION}}})
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn list(items: &[Value]) -> String {
        json!({ "value": items }).to_string()
    }

    use crate::provider::pipeline::fake::{FakeClock, FakeTransport, reply};
    use crate::provider::resources::common::tests::{azure_config, ctx_with};

    /// Runs `ensure_model_version` for content `h` against scripted replies; returns the id and the
    /// requests sent (method and path).
    fn ensure_with(
        replies: Vec<crate::provider::pipeline::fake::Reply>,
        h: &str,
    ) -> (Result<String>, Vec<(String, String)>) {
        let t = FakeTransport::new(replies);
        let c = std::sync::Arc::new(FakeClock::default());
        let ctx = ctx_with(azure_config(), &t, &c);
        let body = json!({"properties": {"modelUri": "azureml://x", "properties": {HASH_KEY: h, HASH_VERSION_KEY: HASH_VERSION}}});
        let got = rt().block_on(ensure_model_version(&ctx, "ep-blue-model", h, &body));
        let sent = t
            .requests()
            .iter()
            .map(|r| {
                (
                    r.method.to_string(),
                    r.url
                        .path()
                        .rsplit("/models/")
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        (got, sent)
    }

    #[test]
    fn model_versions_are_picked_by_recorded_hash_else_max_plus_one() {
        let versions = [
            version("1", "aaa"),
            version("3", "bbb"),
            json!({"id": "/x", "name": "legacy"}),
        ];
        assert_eq!(
            pick_model_version(&versions, "bbb"),
            ModelPick::Reuse("/ws/models/m/versions/3".into())
        );
        assert_eq!(pick_model_version(&versions, "ccc"), ModelPick::Register(4));
        assert_eq!(pick_model_version(&[], "ccc"), ModelPick::Register(1));
        // A hash recorded by another tool (another hash_version) is not ours.
        let foreign = json!({"id": "/f", "name": "7", "properties": {"properties": {HASH_KEY: "ccc", HASH_VERSION_KEY: "cli-1"}}});
        assert_eq!(
            pick_model_version(&[foreign], "ccc"),
            ModelPick::Register(8)
        );
    }

    #[test]
    fn same_model_content_reuses_its_version() {
        let (got, sent) = ensure_with(
            vec![reply(
                200,
                &[],
                &list(&[version("1", "aaa"), version("2", "bbb")]),
            )],
            "aaa",
        );
        assert_eq!(got.unwrap(), "/ws/models/m/versions/1");
        assert_eq!(sent, vec![("GET".into(), "ep-blue-model/versions".into())]);
    }

    #[test]
    fn new_model_content_registers_the_next_integer() {
        let (got, sent) = ensure_with(
            vec![
                reply(200, &[], &list(&[version("1", "aaa"), version("2", "bbb")])),
                reply(201, &[], &version("3", "ccc").to_string()),
            ],
            "ccc",
        );
        assert_eq!(got.unwrap(), "/ws/models/m/versions/3");
        assert_eq!(sent[1], ("PUT".into(), "ep-blue-model/versions/3".into()));
        // The first version of a model that has none (its container does not exist yet) is 1.
        let (got, sent) = ensure_with(
            vec![
                reply(
                    404,
                    &[],
                    r#"{"error":{"code":"UserError","message":"not found"}}"#,
                ),
                reply(201, &[], &version("1", "ccc").to_string()),
            ],
            "ccc",
        );
        assert_eq!(got.unwrap(), "/ws/models/m/versions/1");
        assert_eq!(sent[1], ("PUT".into(), "ep-blue-model/versions/1".into()));
    }

    #[test]
    fn a_model_version_taken_by_another_run_is_chosen_again() {
        let taken = r#"{"error":{"code":"UserError","message":"Asset paths cannot be updated."}}"#;
        let (got, sent) = ensure_with(
            vec![
                reply(200, &[], &list(&[version("1", "aaa")])),
                reply(409, &[], taken),
                reply(200, &[], &version("2", "other").to_string()),
                reply(
                    200,
                    &[],
                    &list(&[version("1", "aaa"), version("2", "other")]),
                ),
                reply(201, &[], &version("3", "ccc").to_string()),
            ],
            "ccc",
        );
        assert_eq!(got.unwrap(), "/ws/models/m/versions/3");
        let paths: Vec<&str> = sent
            .iter()
            .map(|(m, p)| if m == "PUT" { p.as_str() } else { "" })
            .filter(|p| !p.is_empty())
            .collect();
        assert_eq!(
            paths,
            ["ep-blue-model/versions/2", "ep-blue-model/versions/3"]
        );
        // The other run registered the same content under that number: it is reused.
        let (got, sent) = ensure_with(
            vec![
                reply(200, &[], &list(&[version("1", "aaa")])),
                reply(400, &[], taken),
                reply(200, &[], &version("2", "ccc").to_string()),
            ],
            "ccc",
        );
        assert_eq!(got.unwrap(), "/ws/models/m/versions/2");
        assert_eq!(sent.len(), 3);
        // Any other refusal is the caller's error.
        let (got, _) = ensure_with(
            vec![
                reply(200, &[], &list(&[])),
                reply(
                    400,
                    &[],
                    r#"{"error":{"code":"UserError","message":"bad modelUri"}}"#,
                ),
                reply(
                    404,
                    &[],
                    r#"{"error":{"code":"UserError","message":"not found"}}"#,
                ),
            ],
            "ccc",
        );
        assert!(got.unwrap_err().message.contains("bad modelUri"));
    }

    #[test]
    fn a_local_model_reads_back_by_its_recorded_hash_not_its_version() {
        let ctx = ctx();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.pkl"), "weights").unwrap();
        let hash = LocalAsset::load(dir.path().to_str().unwrap()).unwrap().hash;
        let inputs = serde_json::from_value::<Map<String, Value>>(json!({
            "name": "blue", "endpoint": "ep", "model": {"path": dir.path().to_str().unwrap()},
            "code_configuration": {"code": "./code", "scoring_script": "score.py"},
        }))
        .unwrap();
        let req = ResourceRequest::new(T, "blue", inputs.clone());
        let body = deployment_body(&ctx, &inputs, "westus", &ids()).unwrap();
        let same = observe_with(&ctx, &req, &body, 0, Some(&hash)).unwrap();
        assert_eq!(same.inputs["model"], inputs["model"]);
        let other = observe_with(&ctx, &req, &body, 0, Some("changed")).unwrap();
        assert_eq!(other.inputs["model"], "azureml:m:1");
        let unknown = observe_with(&ctx, &req, &body, 0, None).unwrap();
        assert_eq!(unknown.inputs["model"], "azureml:m:1");
    }

    #[test]
    fn a_single_file_code_path_is_uploaded_into_a_folder() {
        // Bug: a single-file `code` path was registered as a file URI; a code version names a folder.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        let file = dir.path().join("src/score.py");
        std::fs::write(&file, "def init(): pass").unwrap();
        let a = LocalAsset::load_folder(file.to_str().unwrap()).unwrap();
        assert_eq!(a.folder, "src");
        assert!(a.prefix().ends_with("/src"), "{}", a.prefix());
        assert_eq!(a.blob_name("score.py"), format!("{}/score.py", a.prefix()));
        // Same content, same version as before.
        assert_eq!(
            a.version(),
            LocalAsset::load(file.to_str().unwrap()).unwrap().version()
        );
    }

    #[test]
    fn registered_refs() {
        assert_eq!(
            registered(&json!("azureml:m:3")),
            Some(("m".into(), "3".into()))
        );
        assert_eq!(registered(&json!("m:3")), None);
    }
}
