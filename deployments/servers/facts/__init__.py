"""What a server has: system, CPU, memory, disk, NVIDIA GPUs and driver, Docker, compose and
the NVIDIA container toolkit.

The parsers are pure functions of a command's output; they raise FactsError with a message
meant for people when the output is not what the command prints. `gather_facts` runs the
probes through an SSH client and turns a probe that fails into an entry that says why, so one
missing tool never hides the rest; so does a command that outlives its timeout (a hung
nvidia-smi or Docker engine). Transport failures of the client (SSHError) propagate.

Shape of the facts (JSON-serialisable, stored in Server.facts):

    {"os": {"id", "version_id", "pretty_name"},
     "arch": "x86_64",
     "cpu": {"cores", "model"},
     "memory": {"total_bytes", "available_bytes"},
     "disk": {"path", "total_bytes", "free_bytes"},
     "gpus": [{"index", "name", "uuid", "memory_total_mib", "memory_used_mib",
               "memory_free_mib", "driver_version", "compute_cap",
               "utilization_percent"}, ...],
     "nvidia": {"driver_version", "cuda_version"},
     "docker": {"client_version", "server_version", "data_root", "runtimes",
                "default_runtime"},
     "compose": {"variant": "plugin" | "v1" | "standalone", "version"},
     "nvidia_container_toolkit": {"installed", "version", "docker_runtime"},
     "errors": {section: reason, ...}}

A section whose probe failed is {"error": reason} instead ("arch" is None), and the reason is
also listed under "errors". "gpus" is always a list: [] when there is no usable GPU, with the
reason under "nvidia".

The modules, each importing only those above it:
- output: FactsError, and reading what a command printed (shared by the parsers).
- system, nvidia, docker: the parsers per area (OS, CPU, memory and disk; nvidia-smi;
  Docker, compose and the container toolkit), and compose_command.
- gather: the commands run on the server, and gather_facts.
- docker_gpu: check_docker_gpu, a container started with the GPUs.
"""

from .docker import (
    compose_command,
    explain_docker_failure,
    parse_compose_version,
    parse_docker_info,
    parse_docker_version,
    parse_toolkit_version,
)
from .docker_gpu import check_docker_gpu
from .gather import gather_facts
from .nvidia import (
    NVIDIA_QUERY_FIELDS,
    explain_nvidia_smi_failure,
    parse_nvidia_smi_csv,
    parse_nvidia_smi_list,
    parse_nvidia_smi_table,
)
from .output import FactsError
from .system import parse_cpu, parse_df_bytes, parse_meminfo, parse_os_release

__all__ = [
    "NVIDIA_QUERY_FIELDS",
    "FactsError",
    "check_docker_gpu",
    "compose_command",
    "explain_docker_failure",
    "explain_nvidia_smi_failure",
    "gather_facts",
    "parse_compose_version",
    "parse_cpu",
    "parse_df_bytes",
    "parse_docker_info",
    "parse_docker_version",
    "parse_meminfo",
    "parse_nvidia_smi_csv",
    "parse_nvidia_smi_list",
    "parse_nvidia_smi_table",
    "parse_os_release",
    "parse_toolkit_version",
]
