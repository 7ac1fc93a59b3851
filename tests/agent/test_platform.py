"""Platform pieces that can be checked on any machine."""

from __future__ import annotations

from wcms.agent.platform import app_specific_id, current_platform
from wcms.agent.platform.linux import LinuxPlatform
from wcms.agent.platform.windows import WindowsPlatform


def test_this_machine_is_linux() -> None:
    assert isinstance(current_platform(), LinuxPlatform)


def test_app_specific_id_is_stable_and_hides_the_source() -> None:
    first = app_specific_id("abc\n")
    assert first == app_specific_id("abc")
    assert len(first) == 32 and "abc" not in first
    assert first != app_specific_id("abd")


def test_windows_output_falls_back_to_the_oem_code_page() -> None:
    korean = WindowsPlatform(oem_codepage="cp949")
    assert korean.decode_output("안녕하세요".encode("cp949"), complete=True) == "안녕하세요"
    assert korean.decode_output("héllo ✓".encode(), complete=True) == "héllo ✓"


def test_cut_off_utf8_is_not_mistaken_for_the_oem_code_page() -> None:
    korean = WindowsPlatform(oem_codepage="cp949")
    data = "가나".encode()[:-1]  # the last character cut in half
    assert korean.decode_output(data, complete=False) == "가"


def test_linux_reads_the_cpu_model_and_os_name() -> None:
    platform = LinuxPlatform()
    assert platform.cpu_model()
    info = platform.os_info()
    assert info.name == "Linux" and info.version and info.pretty
