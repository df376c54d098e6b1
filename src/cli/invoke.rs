//! `stackform invoke` and `stackform logs`: call an endpoint the stack created, and read a deployment's
//! container log. The endpoint key is fetched when needed and never printed. Neither command changes
//! the cloud or the state. A scoring call answered with an error exits [`exit::ERROR`].
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use super::common::StackArgs;
use super::engine::{self, TargetArgs};
use super::error::{CliError, Hint, InvokeError};
use super::exit;
use crate::report::stdio::{errln, out, outln};
use crate::state::StateFile;

/// Call an endpoint with its key, like `az ml online-endpoint invoke`, and print the JSON answer.
///
/// RESOURCE is an online_endpoint of the stack (or one of its deployments, which then receives the
/// request). On an error from the scoring script the tail of the deployment's log is shown; exit 1.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The endpoint (or deployment) resource in the stack file.
    #[arg(value_name = "RESOURCE")]
    pub resource: String,

    /// JSON file with the request body, e.g. examples/managed-identity/sample-request.json.
    #[arg(long, value_name = "FILE")]
    pub request_file: PathBuf,

    /// Send the request to this deployment (by its name) regardless of the traffic split.
    #[arg(long, value_name = "NAME")]
    pub deployment: Option<String>,

    #[command(flatten)]
    pub stack: StackArgs,

    #[command(flatten)]
    pub target: TargetArgs,
}

/// Print a deployment's container log (through the getLogs operation).
///
/// RESOURCE is an online_deployment of the stack, or an endpoint that has exactly one deployment.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The deployment (or its endpoint) resource in the stack file; optional when the stack has one deployment.
    #[arg(value_name = "RESOURCE")]
    pub resource: Option<String>,

    /// How many lines from the end.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub tail: u32,

    #[command(flatten)]
    pub stack: StackArgs,

    #[command(flatten)]
    pub target: TargetArgs,
}

fn input_str<'a>(state: &'a StateFile, address: &str, field: &str) -> Option<&'a str> {
    state.resources.get(address)?.inputs.get(field)?.as_str()
}

/// `(endpoint name, deployment name)` for a resource address.
fn endpoint_of(state: &StateFile, address: &str) -> Result<(String, Option<String>), InvokeError> {
    let Some(r) = state.resources.get(address) else {
        return Err(InvokeError::NotInState {
            address: address.to_string(),
            hint: Hint::closest(address, state.resources.keys().map(String::as_str)),
        });
    };
    let name = |f: &str| input_str(state, address, f).map(str::to_string);
    let not_recorded = |what| InvokeError::NotRecorded { what };
    match r.resource_type.as_str() {
        "online_endpoint" => Ok((
            name("name").ok_or_else(|| not_recorded("endpoint's name"))?,
            None,
        )),
        "online_deployment" => Ok((
            name("endpoint").ok_or_else(|| not_recorded("deployment's endpoint"))?,
            name("name"),
        )),
        other => Err(InvokeError::NotAnEndpoint {
            address: address.to_string(),
            type_name: other.to_string(),
        }),
    }
}

/// Deployment names of an endpoint recorded in state.
fn deployments_of(state: &StateFile, endpoint: &str) -> Vec<String> {
    state
        .resources
        .iter()
        .filter(|(_, r)| r.resource_type == "online_deployment")
        .filter(|(_, r)| r.inputs.get("endpoint").and_then(Value::as_str) == Some(endpoint))
        .filter_map(|(_, r)| {
            r.inputs
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

fn applied_state(
    stack: &StackArgs,
    target: &TargetArgs,
) -> Result<(engine::Loaded, StateFile), CliError> {
    let loaded = engine::load(stack, target)?;
    let state = engine::read_state(&loaded.store)?.ok_or_else(|| CliError::NotApplied {
        stack: loaded.stack.name.clone(),
        state_file: None,
    })?;
    Ok((loaded, state))
}

pub(super) fn run(args: Args) -> Result<ExitCode, CliError> {
    let body =
        std::fs::read(&args.request_file).map_err(CliError::io("read", &args.request_file))?;
    serde_json::from_slice::<Value>(&body).map_err(|source| InvokeError::NotJson {
        path: args.request_file.clone(),
        source,
    })?;
    let (loaded, state) = applied_state(&args.stack, &args.target)?;
    let (endpoint, from_resource) = endpoint_of(&state, &args.resource)?;
    let deployment = args.deployment.clone().or(from_resource);
    let rt = engine::runtime()?;
    rt.block_on(async {
        let provider = engine::connect(&loaded.stack, &loaded.registry, &args.target).await?;
        super::foreign::check_cloud(loaded.store.path(), &state, provider.config())?;
        let answer = provider
            .invoke(&endpoint, &body, deployment.as_deref())
            .await
            .map_err(|source| InvokeError::Call {
                endpoint: endpoint.clone(),
                source: Box::new(source),
            })?;
        if (200..300).contains(&answer.status) {
            // Pretty-print JSON answers; print anything else as it came.
            match serde_json::from_str::<Value>(&answer.body) {
                Ok(v) => outln!("{v}")?,
                Err(_) => outln!("{}", answer.body)?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        errln!(
            "error: the endpoint answered HTTP {}: {}",
            answer.status,
            answer.body.trim()
        );
        let names = match &deployment {
            Some(d) => vec![d.clone()],
            None => deployments_of(&state, &endpoint),
        };
        for name in names {
            match provider.get_logs(&endpoint, &name, 20).await {
                Ok(log) => {
                    errln!("\nlast lines of deployment `{name}`'s log:");
                    for line in log.lines() {
                        errln!("  {line}");
                    }
                }
                Err(e) => errln!("(could not read deployment `{name}`'s log: {e})"),
            }
        }
        Ok(ExitCode::from(exit::ERROR))
    })
}

pub(crate) fn run_logs(args: LogsArgs) -> Result<ExitCode, CliError> {
    let (loaded, state) = applied_state(&args.stack, &args.target)?;
    let address = match &args.resource {
        Some(a) => a.clone(),
        None => {
            let deps: Vec<&String> = state
                .resources
                .iter()
                .filter(|(_, r)| r.resource_type == "online_deployment")
                .map(|(a, _)| a)
                .collect();
            match deps.as_slice() {
                [one] => (*one).clone(),
                [] => return Err(InvokeError::NoDeployment.into()),
                many => {
                    return Err(InvokeError::SeveralDeployments {
                        names: many.iter().map(|s| (*s).clone()).collect(),
                    }
                    .into());
                }
            }
        }
    };
    let (endpoint, deployment) = endpoint_of(&state, &address)?;
    let deployment = match deployment {
        Some(d) => d,
        None => match deployments_of(&state, &endpoint).as_slice() {
            [one] => one.clone(),
            [] => return Err(InvokeError::EndpointWithoutDeployment { endpoint }.into()),
            many => {
                return Err(InvokeError::EndpointWithSeveralDeployments {
                    endpoint,
                    names: many.to_vec(),
                }
                .into());
            }
        },
    };
    let rt = engine::runtime()?;
    rt.block_on(async {
        let provider = engine::connect(&loaded.stack, &loaded.registry, &args.target).await?;
        super::foreign::check_cloud(loaded.store.path(), &state, provider.config())?;
        let log = provider
            .get_logs(&endpoint, &deployment, args.tail)
            .await
            .map_err(|source| InvokeError::Logs {
                deployment: deployment.clone(),
                source: Box::new(source),
            })?;
        out!("{log}")?;
        if !log.ends_with('\n') && !log.is_empty() {
            outln!()?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
