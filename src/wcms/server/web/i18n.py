"""Korean and English for the dashboard: the language from a cookie or the browser.

Templates write English text and wrap it in ``_()``; :data:`KO` holds the Korean. A
phrase missing from the catalogue shows in English rather than breaking a page.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

LANGUAGES = ("en", "ko")
COOKIE = "wcms_lang"

KO: dict[str, str] = {
    "Overview": "개요",
    "Rooms": "실습실",
    "Room": "실습실",
    "Layout": "배치",
    "Layout editor": "배치 편집",
    "Machines": "PC 목록",
    "Machine": "PC",
    "Commands": "명령",
    "Command": "명령",
    "Audit log": "감사 로그",
    "Settings": "설정",
    "Users": "사용자",
    "API keys": "API 키",
    "Enrollment tokens": "등록 토큰",
    "Log in": "로그인",
    "Log out": "로그아웃",
    "User name": "사용자 이름",
    "Password": "비밀번호",
    "Signed in as": "로그인:",
    "Total": "전체",
    "Online": "온라인",
    "Offline": "오프라인",
    "online": "온라인",
    "offline": "오프라인",
    "Unplaced": "미배치",
    "Unplaced machines": "미배치 PC",
    "No room": "실습실 없음",
    "Recent events": "최근 이벤트",
    "came online": "온라인 됨",
    "went offline": "오프라인 됨",
    "command failed": "명령 실패",
    "Status": "상태",
    "Hostname": "호스트 이름",
    "Seat": "좌석",
    "Tags": "태그",
    "User": "사용자",
    "CPU": "CPU",
    "RAM": "메모리",
    "Disk": "디스크",
    "Uptime": "가동 시간",
    "Last seen": "마지막 접속",
    "Search": "검색",
    "All rooms": "모든 실습실",
    "All": "전체",
    "Any status": "모든 상태",
    "Tag": "태그",
    "Sort": "정렬",
    "Select all": "모두 선택",
    "selected": "개 선택됨",
    "Select all matching": "검색 결과 모두 선택",
    "Action": "작업",
    "Send": "보내기",
    "Cancel": "취소",
    "Confirm": "확인",
    "Retry": "재시도",
    "Save": "저장",
    "Saved": "저장됨",
    "Create": "만들기",
    "Rename": "이름 바꾸기",
    "Delete": "삭제",
    "Revoke": "폐기",
    "New room": "새 실습실",
    "Name": "이름",
    "Rows": "행",
    "Columns": "열",
    "Drag a machine onto a seat, then save.": "PC를 좌석으로 끌어다 놓은 뒤 저장하세요.",
    "Tap a machine, then tap a seat.": "PC를 누른 다음 좌석을 누르세요.",
    "Inventory": "하드웨어 정보",
    "Live status": "실시간 상태",
    "History": "기록",
    "Processes": "프로세스",
    "Presence history": "접속 기록",
    "Command history": "명령 기록",
    "Send a command": "명령 보내기",
    "Type": "종류",
    "Output": "출력",
    "Exit code": "종료 코드",
    "Progress": "진행률",
    "Created": "생성",
    "Created by": "생성자",
    "Targets": "대상",
    "State": "상태",
    "Reason": "사유",
    "Time": "시각",
    "Actor": "수행자",
    "Target": "대상",
    "Detail": "내용",
    "Address": "주소",
    "Operating system": "운영체제",
    "CPU model": "CPU 모델",
    "Cores": "코어",
    "Disks": "디스크",
    "Agent version": "에이전트 버전",
    "Boot time": "부팅 시각",
    "Nothing yet.": "아직 없습니다.",
    "No machines match.": "조건에 맞는 PC가 없습니다.",
    "Language": "언어",
    "Send this command to {n} machines?": "{n}대의 PC에 이 명령을 보낼까요?",
    "This is destructive. Send it to {n} machine(s)?": (
        "되돌릴 수 없는 작업입니다. {n}대의 PC에 보낼까요?"
    ),
    "Command #{id} sent to {n} machine(s).": "명령 #{id}을(를) {n}대의 PC에 보냈습니다.",
    "Actions for this room": "이 실습실에 명령 보내기",
    "Actions for the selection": "선택한 PC에 명령 보내기",
    "Uses": "사용 횟수",
    "Valid for (hours)": "유효 시간(시간)",
    "Expires": "만료",
    "Note": "메모",
    "Used": "사용됨",
    "Revoked": "폐기됨",
    "Shown once: copy it now.": "한 번만 표시됩니다. 지금 복사하세요.",
    "Install the agent on Linux": "Linux에 에이전트 설치",
    "Install the agent on Windows": "Windows에 에이전트 설치",
    "Copy": "복사",
    "Copied": "복사됨",
    "Last login": "마지막 로그인",
    "Last used": "마지막 사용",
    "Role": "역할",
    "Change password": "비밀번호 변경",
    "New user": "새 사용자",
    "New API key": "새 API 키",
    "New enrollment token": "새 등록 토큰",
    "Wrong user name or password.": "사용자 이름 또는 비밀번호가 틀렸습니다.",
    "The form expired or was not sent from this site; please try again.": (
        "양식이 만료되었거나 이 사이트에서 보낸 것이 아닙니다. 다시 시도하세요."
    ),
    "Page not found.": "페이지를 찾을 수 없습니다.",
    "Something went wrong": "문제가 발생했습니다",
    "Back": "뒤로",
    "Range": "기간",
    "Done": "완료",
    "running": "실행 중",
    "queued": "대기",
    "delivered": "전달됨",
    "succeeded": "성공",
    "failed": "실패",
    "timed_out": "시간 초과",
    "cancelled": "취소됨",
    "expired": "만료됨",
    "Show processes": "프로세스 보기",
    "Machines in this room": "이 실습실의 PC",
    "machines": "대",
    "Previous": "이전",
    "Next": "다음",
    "Duplicate agent": "중복 에이전트",
    "Live": "실시간",
    "Reconnecting…": "다시 연결 중…",
    "Room to place machines in": "PC를 배치할 실습실",
    "Open layout editor": "배치 편집 열기",
    "Not on the grid": "좌석 미지정",
    "Delete room {name}? Its machines go to the unplaced tray.": (
        "{name} 실습실을 삭제할까요? PC는 미배치 목록으로 옮겨집니다."
    ),
    "Programs": "프로그램",
    "Program": "프로그램",
    "Add program": "프로그램 추가",
    "No programs yet.": "아직 프로그램이 없습니다.",
    "Program {name} added.": "프로그램 {name}을(를) 추가했습니다.",
    "Remove program {name}? Its agent stops it.": (
        "프로그램 {name}을(를) 삭제할까요? 에이전트가 프로그램을 중지합니다."
    ),
    "Start": "시작",
    "Stop": "중지",
    "Restart": "재시작",
    "Remove": "삭제",
    "Restarts": "재시작 횟수",
    "Players": "접속자",
    "Last exit": "마지막 종료",
    "code": "코드",
    "signal": "시그널",
    "Wanted": "요청 상태",
    "not yet on the agent": "아직 에이전트에 전달되지 않음",
    "Preset": "프리셋",
    "Command line": "명령줄",
    "Working directory": "작업 디렉터리",
    "Restart policy": "재시작 정책",
    "From the preset": "프리셋 기본값",
    "Stop command": "중지 명령",
    "timeout": "제한 시간",
    "Probe": "상태 확인",
    "answers": "응답함",
    "no answer": "응답 없음",
    "Schedule": "예약",
    "Ready line": "준비 완료 줄",
    "Memory limit": "메모리 제한",
    "Autostart": "자동 시작",
    "Start now and with its agent": "지금, 그리고 에이전트가 시작할 때 시작",
    "Environment": "환경 변수",
    "yes": "예",
    "no": "아니요",
    "Error": "오류",
    "Reported": "마지막 보고",
    "Definition": "정의",
    "State changes": "상태 변경 기록",
    "Change": "변경",
    "Console": "콘솔",
    "A console command": "콘솔 명령",
    "Waiting for the agent…": "에이전트를 기다리는 중…",
    "The console stopped following: {state}": "콘솔 따라가기가 멈췄습니다: {state}",
    "The agent did not answer (offline?)": "에이전트가 응답하지 않았습니다(오프라인?).",
    "Sent.": "보냈습니다.",
    "Required.": "필수 항목입니다.",
    "Use letters, digits, '.', '_' or '-' (at most 64).": (
        "영문자, 숫자, '.', '_', '-'만 쓸 수 있습니다(최대 64자)."
    ),
    "Too long.": "너무 깁니다.",
    "The command line has an unclosed quote.": "명령줄에 닫히지 않은 따옴표가 있습니다.",
    "This machine already has a program of that name.": (
        "이 PC에 같은 이름의 프로그램이 이미 있습니다."
    ),
    "a schedule is a cron expression of five fields, as '0 4 * * *'": (
        "예약은 '0 4 * * *'처럼 다섯 필드의 cron 식이어야 합니다."
    ),
    "the program's command line is empty": "프로그램의 명령줄이 비어 있습니다.",
    "stopped": "중지됨",
    "starting": "시작 중",
    "stopping": "중지 중",
    "backoff": "재시작 대기",
    "crash_loop": "반복 충돌",
    "user_start": "사용자 시작",
    "user_stop": "사용자 중지",
    "user_restart": "사용자 재시작",
    "scheduled_restart": "예약 재시작",
    "in_game_stop": "게임 내 중지",
    "crash": "충돌",
    "hang": "응답 없음(멈춤)",
    "oom": "메모리 부족",
    "agent_stopped": "에이전트 없이 종료",
    "memory": "메모리 제한",
    "start_failed": "시작 실패",
    "autostart": "자동 시작",
    "retry": "재시도",
    "ready": "준비 완료",
    "adopted": "다시 연결됨",
    "removed": "삭제됨",
}


def negotiate(request: Request) -> str:
    """The cookie's language if set, else the browser's first of Korean and English."""
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, str]] = []
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        base = tag.split("-")[0].lower()
        if base in LANGUAGES:
            ranked.append((quality, base))
    return max(ranked, key=lambda item: item[0])[1] if ranked else "en"


def translator(language: str) -> Callable[..., str]:
    catalogue = KO if language == "ko" else {}

    def translate(text: str, **values: object) -> str:
        out = catalogue.get(text, text)
        return out.format(**values) if values else out

    return translate
