"""Every console string, in Vietnamese (the default) and English, and the language of a request."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from gateway.console.messages import REPORT_MESSAGES, USER_MESSAGES

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
LANG_COOKIE = "lgsp_lang"
# Times are shown in Vietnam's time (UTC+7, no daylight saving), with the offset spelled out.
DISPLAY_TZ = timezone(timedelta(hours=7), "UTC+7")

# key: (Vietnamese, English)
MESSAGES: Mapping[str, tuple[str, str]] = {
    "app.title": ("Trục liên thông văn bản – Quản trị", "Document exchange gateway – Admin"),
    "nav.dashboard": ("Tổng quan", "Dashboard"),
    "nav.documents": ("Nhật ký chuyển văn bản", "Delivery log"),
    "nav.dead_letters": ("Gói tin lỗi", "Dead letters"),
    "nav.participants": ("Đơn vị kết nối", "Participants"),
    "nav.audit": ("Nhật ký thao tác", "Audit trail"),
    "nav.reports": ("Báo cáo thống kê", "Reports"),
    "nav.logout": ("Đăng xuất", "Log out"),
    "nav.signed_in": ("Đăng nhập: {user} ({role})", "Signed in: {user} ({role})"),
    "lang.other": ("English", "Tiếng Việt"),
    "role.viewer": ("chỉ xem", "viewer"),
    "role.operator": ("vận hành", "operator"),
    "role.administrator": ("quản trị", "administrator"),
    "login.title": ("Đăng nhập", "Log in"),
    "login.username": ("Tên đăng nhập", "Username"),
    "login.password": ("Mật khẩu", "Password"),
    "login.submit": ("Đăng nhập", "Log in"),
    "login.failed": ("Sai tên đăng nhập hoặc mật khẩu.", "Wrong username or password."),
    "login.wait": (
        "Đăng nhập sai quá nhiều lần. Hãy thử lại sau {n} giây.",
        "Too many failed log-ins. Try again in {n} seconds.",
    ),
    "dash.title": ("Tổng quan", "Dashboard"),
    "dash.states": (
        "Văn bản 24 giờ qua và lượt chuyển theo trạng thái",
        "The last 24 hours: documents, and their deliveries by state",
    ),
    "dash.documents_24h": (
        "văn bản nhận trong 24 giờ (văn bản)",
        "documents received in 24 hours (documents)",
    ),
    "dash.deliveries_24h": (
        "{n} lượt chuyển của các văn bản này, theo trạng thái:",
        "{n} deliveries of these documents, by state:",
    ),
    "dash.failing_count": (
        "Lượt chuyển lỗi hoặc đang thử lại (lượt)",
        "Deliveries failing or retrying (deliveries)",
    ),
    "dash.failing_dead": ("Trong đó chờ gửi lại (lượt)", "Of which dead-lettered (deliveries)"),
    "dash.throughput": ("Lưu lượng theo giờ (24 giờ qua)", "Throughput per hour (last 24 hours)"),
    "dash.received": ("Đã nhận", "Received"),
    "dash.delivered": ("Đã chuyển", "Delivered"),
    "dash.failing": ("Đơn vị nhận lỗi nhiều nhất", "Destinations that fail most"),
    "dash.failing_none": ("Không có đơn vị nào đang lỗi.", "No destination is failing."),
    "dash.queues": ("Hàng đợi", "Queues"),
    "dash.queue_method": ("Phương thức", "Method"),
    "dash.queue_work": ("Chờ xử lý", "Waiting"),
    "dash.queue_retry": ("Chờ thử lại", "Retrying"),
    "dash.queue_dead": ("Lỗi", "Dead"),
    "dash.queues_unavailable": (
        "Không đọc được hàng đợi: {error}",
        "Queue depths unavailable: {error}",
    ),
    "dash.health": ("Tình trạng kết nối", "Health"),
    "health.store": ("Cơ sở dữ liệu", "Store"),
    "health.broker": ("Hàng đợi RabbitMQ", "Broker (RabbitMQ)"),
    "health.national": ("Trục quốc gia", "National link"),
    "health.ok": ("hoạt động", "ok"),
    "health.down": ("lỗi", "down"),
    "health.not_configured": ("chưa cấu hình", "not configured"),
    "health.configured": ("đã cấu hình", "configured"),
    "health.poll_lag": ("lần lấy tin gần nhất {s} giây trước", "last poll {s} s ago"),
    "health.no_poll": ("chưa lấy tin lần nào", "no poll yet"),
    "count": ("Số lượng", "Count"),
    "state.accepted": ("Đã tiếp nhận", "Accepted"),
    "state.queued": ("Đang chờ chuyển", "Queued"),
    "state.delivered": ("Đã chuyển", "Delivered"),
    "state.retrying": ("Đang thử lại", "Retrying"),
    "state.failed": ("Bị từ chối", "Failed"),
    "state.dead_lettered": ("Lỗi, chờ gửi lại", "Dead-lettered"),
    "status.01": ("01 – Đã đến", "01 – Arrived"),
    "status.02": ("02 – Từ chối tiếp nhận", "02 – Rejected"),
    "status.03": ("03 – Đã tiếp nhận", "03 – Accepted"),
    "status.04": ("04 – Phân công xử lý", "04 – Assigned"),
    "status.05": ("05 – Đang xử lý", "05 – Processing"),
    "status.06": ("06 – Hoàn thành", "06 – Finished"),
    "status.13": ("13 – Yêu cầu lấy lại", "13 – Recall requested"),
    "status.15": ("15 – Đồng ý cập nhật, lấy lại", "15 – Change accepted"),
    "status.16": ("16 – Từ chối cập nhật, lấy lại", "16 – Change rejected"),
    "status.reserved": ("{code} – Mã dự phòng", "{code} – Reserved code"),
    "kind.document": ("Văn bản", "Document"),
    "kind.status": ("Trạng thái", "Status"),
    "btype.0": ("Văn bản mới", "New"),
    "btype.1": ("Thu hồi", "Revoke"),
    "btype.2": ("Cập nhật", "Update"),
    "btype.3": ("Thay thế", "Replace"),
    "any": ("(tất cả)", "(any)"),
    "none": ("—", "—"),
    "search.title": ("Tra cứu nhật ký chuyển văn bản", "Delivery log search"),
    "search.submit": ("Tìm", "Search"),
    "search.reset": ("Xóa điều kiện", "Clear"),
    "search.results": ("{n} văn bản", "{n} documents"),
    "search.matching_deliveries": ("{n} lượt chuyển khớp điều kiện", "{n} matching deliveries"),
    "search.live": ("Tự động cập nhật (5 giây)", "Auto-refresh (every 5 s)"),
    "search.live_updated": ("Cập nhật lúc {at}", "Updated at {at}"),
    "search.export_csv": ("Xuất CSV kết quả tìm kiếm", "Export these results (CSV)"),
    "search.next_retry": ("gửi lại lúc {at}", "next try {at}"),
    "col.delivery_id": ("Mã lượt chuyển", "Delivery id"),
    "method.push": ("Đẩy qua HTTP", "HTTP push"),
    "method.mailbox": ("Hộp thư (đơn vị tự lấy)", "Mailbox"),
    "method.national": ("Trục quốc gia", "National platform"),
    "method.soap": ("Dịch vụ SOAP", "SOAP service"),
    "search.none": ("Không có văn bản nào phù hợp.", "No document matches."),
    "search.bad_input": ("Điều kiện tìm kiếm không hợp lệ: {error}", "Invalid search: {error}"),
    "search.dates_hint": (
        "Ngày theo giờ Việt Nam (UTC+7), tính cả ngày cuối.",
        "Dates in Vietnam time (UTC+7), the last day included.",
    ),
    "field.document_id": ("Mã văn bản (DocumentId)", "DocumentId"),
    "field.sender": ("Đơn vị gửi", "Sender"),
    "field.recipient": ("Đơn vị nhận", "Recipient"),
    "field.state": ("Trạng thái chuyển", "Delivery state"),
    "field.business_status": ("Trạng thái xử lý", "Business status"),
    "field.since": ("Từ ngày", "From"),
    "field.until": ("Đến ngày", "To"),
    "field.text": ("Trích yếu có chứa", "Subject contains"),
    "col.received_at": ("Thời điểm nhận", "Received"),
    "col.subject": ("Trích yếu", "Subject"),
    "col.kind": ("Loại", "Kind"),
    "col.method": ("Phương thức", "Method"),
    "col.attempts": ("Số lần gửi", "Attempts"),
    "col.reason": ("Lý do", "Reason"),
    "col.updated_at": ("Cập nhật", "Updated"),
    "col.at": ("Thời điểm", "When"),
    "col.event": ("Sự kiện", "Event"),
    "col.outcome": ("Kết quả", "Outcome"),
    "col.actor": ("Người/tiến trình", "Actor"),
    "col.detail": ("Chi tiết", "Detail"),
    "col.action": ("Thao tác", "Action"),
    "col.target": ("Đối tượng", "Target"),
    "pager.prev": ("« Trang trước", "« Previous"),
    "pager.next": ("Trang sau »", "Next »"),
    "pager.page": ("Trang {page}/{pages}", "Page {page} of {pages}"),
    "doc.title": ("Văn bản", "Document"),
    "doc.record": ("Bản ghi của trục", "Gateway record"),
    "doc.gateway_id": ("Mã bản ghi", "Record id"),
    "doc.format": ("Định dạng", "Format"),
    "doc.size": ("Kích thước", "Size"),
    "doc.caller": ("Hệ thống gửi", "Submitted by"),
    "doc.header": ("Thông tin văn bản", "Header"),
    "doc.code": ("Số, ký hiệu", "Number and notation"),
    "doc.promulgation": ("Nơi, ngày ban hành", "Place and date"),
    "doc.doc_type": ("Loại văn bản", "Document type"),
    "doc.signer_info": ("Người ký", "Signed by"),
    "doc.due_date": ("Hạn xử lý", "Due date"),
    "doc.priority": ("Độ khẩn", "Priority"),
    "doc.to": ("Nơi nhận", "Recipients"),
    "doc.trace_headers": ("Các chặng (TraceHeader)", "Hops (TraceHeader)"),
    "doc.status_code": ("Mã trạng thái", "Status code"),
    "doc.description": ("Mô tả", "Description"),
    "doc.response_for": ("Trả lời cho", "In reply to"),
    "doc.attachments": ("Tệp đính kèm", "Attachments"),
    "doc.no_attachments": ("Không có tệp đính kèm.", "No attachments."),
    "doc.download": ("Tải về", "Download"),
    "doc.raw_package": ("Tải gói tin gốc", "Download the package as received"),
    "doc.evidence_title": ("Chứng cứ", "Evidence"),
    "doc.evidence": (
        "Tải hồ sơ chứng cứ (kiểm tra được ngoại tuyến)",
        "Download the evidence bundle (checkable offline)",
    ),
    "doc.package_error": (
        "Không đọc được gói tin đã lưu: {error}",
        "The stored package cannot be read: {error}",
    ),
    "doc.signature": ("Chữ ký số", "Signature"),
    "sig.signer": ("Người ký (chứng thư)", "Signer (certificate)"),
    "sig.fingerprint": ("Dấu vân tay SHA-256", "SHA-256 fingerprint"),
    "sig.algorithm": ("Thuật toán", "Algorithm"),
    "sig.verified_at": ("Thời điểm kiểm tra", "Verified at"),
    "sig.chain": ("Chuỗi chứng thư", "Certificate chain"),
    "sig.issuer": ("Cấp bởi", "Issuer"),
    "sig.validity": ("Hiệu lực", "Valid"),
    "sig.serial": ("Số hiệu", "Serial"),
    "sig.chain_unavailable": (
        "Gói tin đã lưu không mang chuỗi chứng thư.",
        "The stored package carries no certificate chain.",
    ),
    "doc.national_doc_id": ("Mã trên trục quốc gia (docId)", "National platform docId"),
    "doc.via_national": (
        "qua trục quốc gia, docId {doc_id}",
        "via the national platform, docId {doc_id}",
    ),
    "doc.resend": ("Gửi lại", "Send again"),
    "doc.resent": (
        "Đã đưa lượt chuyển vào hàng đợi gửi lại (giữ nguyên mã lượt chuyển).",
        "The delivery is queued again (same delivery id).",
    ),
    "doc.by_user": ("bởi {user}", "by {user}"),
    "pkind.party": ("Khối Đảng", "Party"),
    "pkind.state": ("Khối Nhà nước", "State"),
    "pkind.mass": ("Khối đoàn thể", "Mass organisation"),
    "pkind.business": ("Doanh nghiệp", "Business"),
    "pkind.national": ("Trục quốc gia", "National platform"),
    "plevel.national": ("Trung ương", "National"),
    "plevel.province": ("Cấp tỉnh", "Province"),
    "plevel.district": ("Cấp huyện", "District"),
    "plevel.commune": ("Cấp xã", "Commune"),
    "audit.action.login": ("Đăng nhập", "Logged in"),
    "audit.action.logout": ("Đăng xuất", "Logged out"),
    "audit.action.replay": ("Gửi lại gói tin lỗi", "Replayed a dead letter"),
    "audit.action.resend": ("Gửi lại từ trang văn bản", "Sent again from the document page"),
    "audit.action.participant.save": ("Lưu đơn vị kết nối", "Saved a participant"),
    "audit.action.participant.disable": ("Ngừng kết nối đơn vị", "Disabled a participant"),
    "doc.recipients": ("Đơn vị nhận và trạng thái", "Recipients and their state"),
    "doc.timeline": ("Diễn biến", "Timeline"),
    "doc.events": ("Sự kiện gốc", "Raw events"),
    "event.received": ("Trục tiếp nhận", "Received"),
    "event.published": ("Đưa vào hàng đợi", "Queued"),
    "event.republished": ("Đưa lại vào hàng đợi", "Queued again"),
    "event.attempt": ("Lần gửi", "Attempt"),
    "event.delivered": ("Đã chuyển", "Delivered"),
    "event.retry_scheduled": ("Hẹn gửi lại", "Retry scheduled"),
    "event.failed": ("Bị từ chối", "Failed"),
    "event.dead_lettered": ("Chuyển vào hàng lỗi", "Dead-lettered"),
    "event.business_status": ("Trạng thái xử lý", "Business status"),
    "event.inbox_acked": ("Đơn vị đã lấy về", "Taken from the mailbox"),
    "event.replayed": ("Gửi lại theo yêu cầu", "Replayed"),
    "dead.title": ("Gói tin lỗi", "Dead letters"),
    "dead.none": ("Không có gói tin lỗi.", "No dead letters."),
    "dead.replay": ("Gửi lại", "Replay"),
    "dead.replay_selected": ("Gửi lại các mục đã chọn", "Replay the selected"),
    "dead.replay_all": ("Gửi lại tất cả cho đơn vị {organ}", "Replay all for {organ}"),
    "dead.filter": ("Lọc theo đơn vị nhận", "Filter by recipient"),
    "dead.done": ("Đã gửi lại {n} gói tin.", "Replayed {n} deliveries."),
    "dead.refused": (
        "{n} mục không gửi lại được (đã được xử lý?).",
        "{n} could not be replayed (already handled?).",
    ),
    "dead.deferred": (
        "{n} mục sẽ được gửi khi hàng đợi hoạt động trở lại.",
        "{n} will be sent when the broker is back.",
    ),
    "dead.viewer_note": ("Tài khoản chỉ xem không được gửi lại.", "Viewers cannot replay."),
    "part.title": ("Đơn vị kết nối", "Participants"),
    "part.add": ("Thêm đơn vị", "Add a participant"),
    "part.edit": ("Sửa", "Edit"),
    "part.edit_title": ("Sửa đơn vị {organ}", "Edit {organ}"),
    "part.disable": ("Ngừng kết nối", "Disable"),
    "part.enabled": ("Đang kết nối", "Enabled"),
    "part.disabled": ("Đã ngừng", "Disabled"),
    "part.save": ("Lưu", "Save"),
    "part.saved": ("Đã lưu đơn vị {organ}.", "Saved {organ}."),
    "part.disabled_done": ("Đã ngừng kết nối {organ}.", "Disabled {organ}."),
    "part.credentials": ("Thông tin xác thực (dấu vân tay)", "Credentials (fingerprints)"),
    "part.api_keys": ("Khóa API", "API keys"),
    "part.new_api_key": (
        "Khóa API mới (chỉ hiện một lần, hãy sao chép ngay):",
        "New API key (shown once only, copy it now):",
    ),
    "part.exists": ("Đơn vị {organ} đã có.", "{organ} already exists."),
    "part.bad_organ_id": (
        "«{organ}» không phải mã định danh (NNN.NN.NN.XNN) hay mã số thuế.",
        "{organ!r} is neither an OrganId (NNN.NN.NN.XNN) nor a tax code.",
    ),
    "part.invalid": ("Thông tin chưa hợp lệ: {error}", "Invalid: {error}"),
    "field.organ_id": ("Mã định danh (OrganId)", "OrganId"),
    "field.name": ("Tên đơn vị", "Name"),
    "field.kind": ("Khối", "Kind"),
    "field.level": ("Cấp", "Level"),
    "field.parent": ("Đơn vị cấp trên", "Parent"),
    "field.delivery_method": ("Cách nhận văn bản", "Delivery method"),
    "field.delivery_url": ("Địa chỉ nhận (đẩy qua HTTP) hoặc tuyến SOAP", "Push URL or SOAP route"),
    "field.allowed_algorithms": ("Thuật toán ký được phép", "Allowed signature algorithms"),
    "field.may_send_to": ("Được gửi tới (để trống: mọi đơn vị)", "May send to (empty: anyone)"),
    "field.may_speak_for": ("Được gửi thay cho", "May submit for"),
    "field.signing_certs": ("Chứng thư ký số (SHA-256)", "Signing certificates (SHA-256)"),
    "field.client_certs": (
        "Chứng thư TLS máy khách (SHA-256)",
        "TLS client certificates (SHA-256)",
    ),
    "field.enabled": ("Đang kết nối", "Enabled"),
    "field.generate_api_key": ("Cấp thêm một khóa API", "Issue a new API key"),
    "hint.lines": ("Mỗi dòng một giá trị.", "One value per line."),
    "audit.title": ("Nhật ký thao tác quản trị", "Audit trail"),
    "audit.none": ("Chưa có thao tác nào.", "No actions yet."),
    "error.title": ("Lỗi", "Error"),
    "error.400": ("Yêu cầu không hợp lệ.", "The request is not valid."),
    "error.403": ("Bạn không có quyền thực hiện thao tác này.", "You may not do this."),
    "error.404": ("Không tìm thấy.", "Not found."),
    "error.409": (
        "Thao tác xung đột với dữ liệu hiện có.",
        "This conflicts with the current data.",
    ),
    "error.413": ("Yêu cầu quá lớn.", "The request is too large."),
    "error.429": ("Quá nhiều yêu cầu. Hãy thử lại sau.", "Too many requests. Try again later."),
    "error.500": ("Lỗi hệ thống.", "Internal error."),
    "error.503": ("Dịch vụ tạm thời không sẵn sàng.", "A service is unavailable for now."),
    "error.code": ("Mã lỗi", "Error code"),
    "error.request_id": ("Mã yêu cầu", "Request id"),
    "back": ("Quay lại", "Back"),
    **REPORT_MESSAGES,
    **USER_MESSAGES,
}


@dataclass(frozen=True, slots=True)
class Translator:
    """``t(key, **values)`` in one language; ``t.dt(when)`` a time in Vietnam's time."""

    lang: str

    def __call__(self, key: str, **values: object) -> str:
        vi, en = MESSAGES[key]
        text = en if self.lang == "en" else vi
        return text.format(**values) if values else text

    def dt(self, when: datetime | None) -> str:
        if when is None:
            return self("none")
        return when.astimezone(DISPLAY_TZ).strftime("%Y-%m-%d %H:%M:%S")

    def number(self, value: float, digits: int = 1) -> str:
        """``1.5`` as ``1,5`` in Vietnamese, ``1.5`` in English."""
        text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
        return text.replace(".", ",") if self.lang == "vi" else text

    def duration(self, seconds: float | None) -> str:
        """A delivery time: seconds under a minute, minutes under an hour, else hours."""
        if seconds is None:
            return self("none")
        if math.isinf(seconds):
            return self("duration.over_day")
        if seconds < 60:
            return self("duration.s", n=self.number(seconds))
        if seconds < 3600:
            return self("duration.min", n=self.number(seconds / 60))
        return self("duration.h", n=self.number(seconds / 3600))

    def label(self, prefix: str, value: str) -> str:
        """The name of ``prefix.value`` if there is one, else ``value`` itself."""
        key = f"{prefix}.{value}"
        return self(key) if key in MESSAGES else value

    def status(self, code: str | None) -> str:
        """A business status code with its name."""
        if code is None:
            return self("none")
        key = f"status.{code}"
        return self(key) if key in MESSAGES else self("status.reserved", code=code)


def choose_language(query_lang: str | None, cookie_lang: str | None) -> str:
    """``?lang=`` first, then the cookie, else Vietnamese."""
    for lang in (query_lang, cookie_lang):
        if lang in LANGUAGES:
            return lang
    return DEFAULT_LANGUAGE
