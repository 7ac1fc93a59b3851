"""The agent as a Windows service (pywin32).

The service accepts PreShutdown: when Windows starts shutting down it tells the server
the machine is going away (at most two seconds, the agent's shutdown_timeout) and stops,
without holding the shutdown up any longer than :data:`PRESHUTDOWN_TIMEOUT_MS`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from wcms.agent.service import ServiceSpec

SERVICE_NAME = "WCMSAgent"
# Where the service finds its configuration file.
PARAMETERS_KEY = rf"SYSTEM\CurrentControlSet\Services\{SERVICE_NAME}\Parameters"
DISPLAY_NAME = "WCMS agent"
DESCRIPTION = "Remote management and monitoring agent of WCMS."
# The most Windows waits for the PreShutdown handler; the agent is done within 2 s.
PRESHUTDOWN_TIMEOUT_MS = 3000
# On failure: restart after 5 s, twice, then after 60 s; the count resets after a day.
RESTART_DELAYS_MS = (5000, 5000, 60000)
FAILURE_RESET_S = 86400
# The agent's exit codes that must not be restarted: bad configuration, revoked.
NO_RESTART_EXIT_CODES = (2, 3)


@dataclass(frozen=True)
class ServicePlan:
    """Everything the installer registers, in one value that tests can check."""

    name: str
    display_name: str
    description: str
    python_class: str
    config_file: str
    preshutdown_timeout_ms: int
    restart_delays_ms: tuple[int, ...]
    failure_reset_s: int


def plan(spec: ServiceSpec) -> ServicePlan:
    return ServicePlan(
        name=SERVICE_NAME,
        display_name=DISPLAY_NAME,
        description=DESCRIPTION,
        python_class="wcms.agent.winservice.AgentService",
        config_file=str(spec.config_file),
        preshutdown_timeout_ms=PRESHUTDOWN_TIMEOUT_MS,
        restart_delays_ms=RESTART_DELAYS_MS,
        failure_reset_s=FAILURE_RESET_S,
    )


if sys.platform == "win32":
    import contextlib
    import winreg

    import pywintypes
    import win32service
    import win32serviceutil

    def install(spec: ServiceSpec) -> str:
        """Register the service (automatic start, PreShutdown, restart on failure)."""
        chosen = plan(spec)
        win32serviceutil.InstallService(
            chosen.python_class,
            chosen.name,
            chosen.display_name,
            startType=win32service.SERVICE_AUTO_START,
            description=chosen.description,
        )
        with winreg.CreateKey(winreg.HKEY_LOCAL_MACHINE, PARAMETERS_KEY) as key:
            winreg.SetValueEx(key, "ConfigFile", 0, winreg.REG_SZ, chosen.config_file)
        _configure(chosen)
        if spec.start:
            win32serviceutil.StartService(chosen.name)
            return f"installed and started the {chosen.name} service"
        return f"installed the {chosen.name} service; start it with: sc start {chosen.name}"

    def _configure(chosen: ServicePlan) -> None:
        manager = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_ALL_ACCESS)
        try:
            handle = win32service.OpenService(manager, chosen.name, win32service.SERVICE_ALL_ACCESS)
            try:
                win32service.ChangeServiceConfig2(
                    handle,
                    win32service.SERVICE_CONFIG_PRESHUTDOWN_INFO,
                    chosen.preshutdown_timeout_ms,
                )
                actions = [(win32service.SC_ACTION_RESTART, ms) for ms in chosen.restart_delays_ms]
                win32service.ChangeServiceConfig2(
                    handle,
                    win32service.SERVICE_CONFIG_FAILURE_ACTIONS,
                    {
                        "ResetPeriod": chosen.failure_reset_s,
                        "RebootMsg": None,
                        "Command": None,
                        "Actions": actions,
                    },
                )
            finally:
                win32service.CloseServiceHandle(handle)
        finally:
            win32service.CloseServiceHandle(manager)

    def uninstall(spec: ServiceSpec) -> str:
        with contextlib.suppress(pywintypes.error):  # already stopped
            win32serviceutil.StopService(SERVICE_NAME)
        win32serviceutil.RemoveService(SERVICE_NAME)
        return f"removed the {SERVICE_NAME} service"
