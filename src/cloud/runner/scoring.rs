//! The scoring HTTP proxy: `POST /inference/{endpoint}/score` authenticated with the endpoint's key or
//! token, routed to a deployment (the `azureml-model-deployment` header, else the traffic split) and
//! forwarded to that deployment's process within its `requestTimeout`, with Azure ML's error shapes.
//!
//! It only reads the store and the process table; it never starts or stops a process.
use axum::body::{Body, Bytes};
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::cloud::auth::{ArmLevel, ML_AUDIENCE, arm_level};
use crate::cloud::bodies::str_at;
use crate::cloud::http::with_headers;
use crate::cloud::state::CloudState;
use crate::cloud::store::now_ms;

fn score_error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({"message": msg}))).into_response()
}

/// `424 Failed Dependency` from the model: its status and reason in the `ms-azureml-model-error-*`
/// headers, as Azure ML reports them (the reason is reduced to printable ASCII).
fn model_error(msg: &str, model_status: u16, reason: &str) -> Response {
    let printable: String = reason
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    with_headers(
        score_error(StatusCode::FAILED_DEPENDENCY, msg),
        &[
            (
                "ms-azureml-model-error-statuscode",
                model_status.to_string(),
            ),
            ("ms-azureml-model-error-reason", printable),
        ],
    )
}

/// `POST /inference/{endpoint}/score`: authenticates with the endpoint key (or token), picks a
/// deployment (header `azureml-model-deployment`, else the traffic split) and calls `run()`.
pub(crate) async fn score(
    State(st): State<CloudState>,
    AxPath(endpoint): AxPath<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return score_error(StatusCode::METHOD_NOT_ALLOWED, "use POST to score");
    }
    let suffix = format!("/onlineendpoints/{}", endpoint.to_ascii_lowercase());
    let ep = st.store.find_resource_by_suffix(
        &suffix,
        Some("Microsoft.MachineLearningServices/workspaces/onlineEndpoints"),
    );
    let Some((ep_key, ep)) = ep else {
        return score_error(StatusCode::NOT_FOUND, "endpoint not found");
    };
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    let mode = str_at(&ep, "/properties/authMode").unwrap_or("Key");
    let authorised = match mode {
        "Key" => ["primary", "secondary"]
            .iter()
            .filter_map(|k| st.store.secret(&ep_key, k))
            .any(|k| !presented.is_empty() && k == presented),
        "AMLToken" => st
            .signer
            .verify(
                &presented,
                &[&format!("aml-endpoint:{ep_key}")],
                now_ms() / 1000,
            )
            .is_ok(),
        // AADToken: any Entra token for Azure ML proves who the caller is, not that it may score
        // this endpoint. Scoring needs Microsoft.MachineLearningServices/workspaces/onlineEndpoints/
        // score/action on the endpoint (learn.microsoft.com azure/machine-learning
        // how-to-authenticate-online-endpoint: "RBAC required for scoring: Yes (score/action role)"
        // for aad_token). Of the built-in roles this cloud knows, Owner and Contributor (`*`) carry
        // it; Reader (`*/read`) does not.
        _ => match st
            .signer
            .verify(&presented, &[ML_AUDIENCE], now_ms() / 1000)
        {
            Err(_) => false,
            Ok(claims) => {
                let held = st.store.assignments_of(&claims.oid);
                if arm_level(&held, &ep_key, now_ms()) < ArmLevel::Write {
                    return score_error(
                        StatusCode::FORBIDDEN,
                        &format!(
                            "the principal '{}' may not score this endpoint (it needs Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action on it)",
                            claims.oid
                        ),
                    );
                }
                true
            }
        },
    };
    if !authorised {
        return score_error(
            StatusCode::UNAUTHORIZED,
            "the key or token is missing or invalid",
        );
    }
    let forced = headers
        .get("azureml-model-deployment")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let chosen = match forced {
        Some(d) => d,
        None => {
            let traffic: Vec<(String, u64)> = ep
                .pointer("/properties/traffic")
                .and_then(Value::as_object)
                .map(|t| {
                    t.iter()
                        .filter_map(|(k, v)| v.as_u64().filter(|p| *p > 0).map(|p| (k.clone(), p)))
                        .collect()
                })
                .unwrap_or_default();
            let total: u64 = traffic.iter().map(|(_, p)| p).sum();
            if total == 0 {
                return score_error(
                    StatusCode::NOT_FOUND,
                    "no deployment receives traffic; set the endpoint's traffic or send azureml-model-deployment",
                );
            }
            let mut roll = rand::random::<u64>() % total;
            let mut pick = traffic[0].0.clone();
            for (k, p) in traffic {
                if roll < p {
                    pick = k;
                    break;
                }
                roll -= p;
            }
            pick
        }
    };
    let dep_key = format!("{ep_key}/deployments/{}", chosen.to_ascii_lowercase());
    let dep = st.store.resource(&dep_key);
    let Some(dep) = dep else {
        return score_error(
            StatusCode::NOT_FOUND,
            &format!("deployment {chosen} not found"),
        );
    };
    let Some(port) = st.procs.port(&dep_key) else {
        let state = dep
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str)
            .unwrap_or("Unknown");
        return model_error(
            &format!("deployment {chosen} is not serving (provisioningState {state})"),
            503,
            "model not ready",
        );
    };
    let timeout = dep
        .pointer("/properties/requestSettings/requestTimeout")
        .and_then(Value::as_str)
        .and_then(crate::iso8601::parse_seconds)
        .unwrap_or(60.0);
    let call = st
        .local_http
        .post(format!("http://127.0.0.1:{port}/score"))
        .header(
            "content-type",
            headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json"),
        )
        .body(body)
        .timeout(std::time::Duration::from_secs_f64(timeout.max(0.1)))
        .send()
        .await;
    let resp = match call {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return score_error(
                StatusCode::REQUEST_TIMEOUT,
                "the model exceeded requestTimeout",
            );
        }
        Err(_) => {
            return model_error(
                "the model container did not answer",
                502,
                "connection failed",
            );
        }
    };
    let status = resp.status();
    let ctype = resp.headers().get("content-type").cloned();
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut out = if status.is_success() {
        (StatusCode::OK, Body::from(bytes)).into_response()
    } else {
        let reason = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| "model error".into());
        model_error(
            &format!("the model answered {}: {reason}", status.as_u16()),
            status.as_u16(),
            &reason,
        )
    };
    if status.is_success()
        && let Some(c) = ctype
    {
        out.headers_mut().insert("content-type", c);
    }
    if let Ok(v) = HeaderValue::from_str(&chosen) {
        out.headers_mut().insert("azureml-model-deployment", v);
    }
    out
}
