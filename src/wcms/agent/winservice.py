"""The Windows service's entry point: pythonservice.exe loads :class:`AgentService`.

It accepts PreShutdown: when Windows begins to shut down, the agent tells the server the
machine is going away within its shutdown_timeout (two seconds) and stops; Windows waits
for it at most the PRESHUTDOWN_TIMEOUT_MS set at installation.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":
    import asyncio
    import threading
    import winreg
    from pathlib import Path
    from typing import Any

    import servicemanager
    import win32service
    import win32serviceutil

    from wcms.agent.config import AgentConfig
    from wcms.agent.main import Agent, configure_logging
    from wcms.agent.platform.windows_service import PARAMETERS_KEY

    class AgentService(win32serviceutil.ServiceFramework):
        _svc_name_ = "WCMSAgent"
        _svc_display_name_ = "WCMS agent"

        def __init__(self, args: Any) -> None:
            super().__init__(args)
            self._loop: asyncio.AbstractEventLoop | None = None
            self._agent: Agent | None = None
            self._ready = threading.Event()

        def GetAcceptedControls(self) -> int:
            accepted = int(super().GetAcceptedControls())  # type: ignore[no-untyped-call]
            return accepted | win32service.SERVICE_ACCEPT_PRESHUTDOWN

        def SvcOtherEx(self, control: int, event_type: int, data: Any) -> None:
            if control == win32service.SERVICE_CONTROL_PRESHUTDOWN:
                servicemanager.LogInfoMsg("WCMS agent: PreShutdown received")
                self._stop("shutdown")

        def SvcStop(self) -> None:
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
            self._stop("shutdown")

        def SvcDoRun(self) -> None:
            config = AgentConfig.from_env(config_file=configured_file())
            configure_logging(config.log_level_number)
            code = asyncio.run(self._serve(config))
            servicemanager.LogInfoMsg(f"WCMS agent stopped (exit code {code})")

        async def _serve(self, config: AgentConfig) -> int:
            self._loop = asyncio.get_running_loop()
            self._agent = Agent(config)
            self._ready.set()
            return await self._agent.run()

        def _stop(self, reason: str) -> None:
            """From the service control thread: hand the stop to the agent's loop and
            wait for the goodbye, bounded by the agent's shutdown_timeout."""
            if not self._ready.wait(timeout=1.0) or self._loop is None or self._agent is None:
                return
            done = asyncio.run_coroutine_threadsafe(self._agent.stop(reason), self._loop)
            try:
                done.result(timeout=self._agent.config.shutdown_timeout + 0.5)
            except Exception as exc:  # the OS is going down: log it, never block it
                servicemanager.LogErrorMsg(f"WCMS agent: goodbye failed: {exc!r}")

    def configured_file() -> Path:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, PARAMETERS_KEY) as key:
            value, _kind = winreg.QueryValueEx(key, "ConfigFile")
        return Path(str(value))
