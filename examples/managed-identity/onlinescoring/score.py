"""Scoring script for the managed-identity example (standard library only).

init() gets a token for Azure Storage from the managed-identity endpoint that Azure ML (or the stackform
local cloud) gives the deployment (MSI_ENDPOINT + MSI_SECRET), reads the blob named by the deployment's
environment variables over the blob REST API, and logs what it read. If the endpoint's identity has no data
role on the storage account, the read fails with 403 and init() raises, so the deployment fails: the same
failure Azure shows when the role assignment is missing.

run() answers {"data": [[10 numbers], ...]} with one prediction of the linear model per row.
"""
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from email.utils import formatdate

STORAGE_RESOURCE = "https://storage.azure.com/"
MSI_API_VERSION = "2017-09-01"
BLOB_API_VERSION = "2019-02-02"

logger = logging.getLogger("score")
model = None


def _msi_token(resource):
    """Token for `resource` from the deployment's managed identity (user-assigned when UAI_CLIENT_ID is set)."""
    query = {"resource": resource, "api-version": MSI_API_VERSION}
    client_id = os.environ.get("UAI_CLIENT_ID")
    if client_id:
        query["clientid"] = client_id
    url = os.environ["MSI_ENDPOINT"] + "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, headers={"secret": os.environ["MSI_SECRET"], "Metadata": "true"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["access_token"]


def _blob_url():
    account = os.environ["STORAGE_ACCOUNT_NAME"]
    base = os.environ.get("STORAGE_BLOB_ENDPOINT") or f"https://{account}.blob.core.windows.net/"
    container = os.environ["STORAGE_CONTAINER_NAME"]
    name = os.environ["FILE_NAME"]
    return f"{base.rstrip('/')}/{container}/{urllib.parse.quote(name)}"


def _read_blob():
    url = _blob_url()
    headers = {
        "Authorization": "Bearer " + _msi_token(STORAGE_RESOURCE),
        "x-ms-version": BLOB_API_VERSION,
        "x-ms-date": formatdate(usegmt=True),
    }
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        code = err.headers.get("x-ms-error-code", "")
        raise RuntimeError(f"reading {url} failed: HTTP {err.code} {code}") from err


def _load_model():
    root = os.environ.get("AZUREML_MODEL_DIR", ".")
    for folder, _dirs, files in os.walk(root):
        if "model.json" in files:
            with open(os.path.join(folder, "model.json"), encoding="utf-8") as f:
                return json.load(f)
    raise FileNotFoundError(f"model.json not found under {root}")


def init():
    global model
    logging.basicConfig(level=logging.INFO)
    model = _load_model()
    text = _read_blob()
    logger.info("init: read blob %s: %r", os.environ["FILE_NAME"], text)
    print(f"init: read blob {os.environ['FILE_NAME']}: {text!r}", flush=True)


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    weights, bias = model["weights"], model["bias"]
    predictions = []
    for row in rows:
        if len(row) != len(weights):
            raise ValueError(f"each row needs {len(weights)} numbers, got {len(row)}")
        predictions.append(bias + sum(w * float(x) for w, x in zip(weights, row)))
    return predictions
