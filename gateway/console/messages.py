"""The console's messages of its reports and user pages, in Vietnamese and English (merged into
``i18n.MESSAGES``)."""

from __future__ import annotations

from collections.abc import Mapping

# The reports page and its exports, in the terms of the provinces' e-government reports.
REPORT_MESSAGES: Mapping[str, tuple[str, str]] = {
    "rep.title": ("Báo cáo thống kê văn bản điện tử", "Electronic document reports"),
    "rep.role": ("Thống kê đơn vị theo", "Agencies as"),
    "rep.role.sender": ("Đơn vị gửi (văn bản đi)", "Senders (outgoing documents)"),
    "rep.role.recipient": ("Đơn vị nhận (văn bản đến)", "Recipients (incoming documents)"),
    "rep.granularity": ("Kỳ báo cáo", "Period"),
    "gran.day": ("Ngày", "Day"),
    "gran.month": ("Tháng", "Month"),
    "gran.quarter": ("Quý", "Quarter"),
    "gran.year": ("Năm", "Year"),
    "rep.organ": (
        "Mã định danh đơn vị (để trống: toàn tỉnh)",
        "Agency OrganId (empty: the whole province)",
    ),
    "rep.submit": ("Xem báo cáo", "Show the report"),
    "rep.export_csv": ("Xuất CSV", "Export CSV"),
    "rep.export_xlsx": ("Xuất Excel (.xlsx)", "Export a spreadsheet (.xlsx)"),
    "rep.range": (
        "Từ ngày {first} đến ngày {last} (giờ Việt Nam)",
        "From {first} to {last} (Vietnam time)",
    ),
    "rep.by_agency": ("Theo đơn vị", "By agency"),
    "rep.by_level": ("Theo cấp và toàn tỉnh", "By level and for the province"),
    "rep.total": ("Toàn tỉnh", "Province total"),
    "rep.none": ("Không có văn bản nào trong kỳ báo cáo.", "No document in this period."),
    "rep.chart.sender": (
        "Văn bản đi và lượt chuyển thành công, theo {period}",
        "Documents sent and deliveries completed, by {period}",
    ),
    "rep.chart.recipient": (
        "Văn bản đến và lượt chuyển thành công, theo {period}",
        "Documents received and deliveries completed, by {period}",
    ),
    "rep.organ_id": ("Mã định danh", "OrganId"),
    "rep.organ_name": ("Tên đơn vị", "Agency"),
    "rep.level": ("Cấp", "Level"),
    "rep.documents.sender": ("Văn bản đi (văn bản)", "Documents sent (documents)"),
    "rep.documents.recipient": ("Văn bản đến (văn bản)", "Documents received (documents)"),
    "rep.new": ("Văn bản mới", "New"),
    "rep.revoked": ("Thu hồi", "Revoked"),
    "rep.updated": ("Cập nhật", "Updated"),
    "rep.replaced": ("Thay thế", "Replaced"),
    "rep.deliveries": ("Lượt chuyển (lượt)", "Deliveries (deliveries)"),
    "rep.delivered": ("Chuyển thành công (lượt)", "Delivered (deliveries)"),
    "rep.failed": ("Bị từ chối (lượt)", "Failed (deliveries)"),
    "rep.dead_lettered": ("Lỗi, chờ gửi lại (lượt)", "Dead-lettered (deliveries)"),
    "rep.pending": ("Đang chuyển (lượt)", "In progress (deliveries)"),
    "rep.median": ("Thời gian chuyển, trung vị", "Delivery time, median"),
    "rep.p95": ("Thời gian chuyển, 95%", "Delivery time, p95"),
    "rep.statuses.sender": (
        "Trạng thái xử lý đã gửi (gói tin trạng thái)",
        "Status answers sent (status packages)",
    ),
    "rep.statuses.recipient": (
        "Trạng thái xử lý nhận được (gói tin trạng thái)",
        "Status answers received (status packages)",
    ),
    "rep.note": (
        "Văn bản tính theo ngày trục tiếp nhận. Đơn vị nhận: mỗi lượt nhận là một văn bản"
        " đến. Thời gian chuyển tính từ lúc trục tiếp nhận đến lúc chuyển xong, ước lượng"
        " từ phân bố theo khoảng.",
        "Documents count on the day the gateway received them. For a recipient, each "
        "delivery to it is one document received. Delivery time runs from the gateway's "
        "receipt to the completed delivery, estimated from a histogram.",
    ),
    "level.province": ("Cấp tỉnh (cấp 1)", "Province (level 1)"),
    "level.district": ("Cấp huyện, sở, ngành (cấp 2)", "District or department (level 2)"),
    "level.commune": ("Cấp xã, phòng (cấp 3)", "Commune or office (level 3)"),
    "level.unit": ("Cấp 4", "Level 4"),
    "level.other": ("Khác (mã số thuế, mã khác)", "Other (tax codes, other forms)"),
    "duration.s": ("{n} giây", "{n} s"),
    "duration.min": ("{n} phút", "{n} min"),
    "duration.h": ("{n} giờ", "{n} h"),
    "duration.over_day": ("trên 1 ngày", "over a day"),
}

# User management and the password page.
USER_MESSAGES: Mapping[str, tuple[str, str]] = {
    "nav.users": ("Người dùng", "Users"),
    "nav.password": ("Đổi mật khẩu", "Change password"),
    "users.title": ("Quản lý người dùng", "Console users"),
    "users.role": ("Vai trò", "Role"),
    "users.set_role": ("Đổi vai trò", "Set role"),
    "users.enabled": ("Đang hoạt động", "Active"),
    "users.disabled": ("Đã khóa", "Disabled"),
    "users.enable": ("Mở khóa", "Enable"),
    "users.disable": ("Khóa tài khoản", "Disable"),
    "users.must_change": ("phải đổi mật khẩu khi đăng nhập", "must change the password"),
    "users.created": ("Tạo lúc", "Created"),
    "users.by": ("bởi {user}", "by {user}"),
    "users.config": ("tệp cấu hình", "the configuration"),
    "users.you": ("bạn", "you"),
    "users.temporary_password": ("Mật khẩu tạm (tùy chọn)", "Temporary password (optional)"),
    "users.force_password": ("Buộc đổi mật khẩu", "Force a password change"),
    "users.add": ("Thêm người dùng", "Add a user"),
    "users.initial_password": ("Mật khẩu ban đầu", "Initial password"),
    "users.must_change_at_login": (
        "Phải đổi mật khẩu ở lần đăng nhập đầu",
        "Must change the password at first log-in",
    ),
    "users.create": ("Tạo người dùng", "Create the user"),
    "users.password_hint": ("Mật khẩu dài ít nhất 10 ký tự.", "At least 10 characters."),
    "users.done.create": ("Đã tạo người dùng {user}.", "Created {user}."),
    "users.done.role": ("Đã đổi vai trò của {user}.", "Changed the role of {user}."),
    "users.done.disable": ("Đã khóa tài khoản {user}.", "Disabled {user}."),
    "users.done.enable": ("Đã mở khóa tài khoản {user}.", "Enabled {user}."),
    "users.done.force_password": (
        "{user} sẽ phải đổi mật khẩu ở lần đăng nhập tới.",
        "{user} must choose a new password at the next log-in.",
    ),
    "uerr.console.bad_username": (
        "Tên đăng nhập gồm 1–64 chữ cái, chữ số hoặc . _ - @.",
        "A username is 1-64 letters, digits or . _ - @.",
    ),
    "uerr.console.weak_password": (
        "Mật khẩu phải dài ít nhất 10 ký tự.",
        "The password needs at least 10 characters.",
    ),
    "uerr.console.user_exists": ("Tên đăng nhập này đã có.", "This username exists."),
    "uerr.console.bad_credentials": (
        "Mật khẩu hiện tại không đúng.",
        "The current password is wrong.",
    ),
    "uerr.console.password_mismatch": (
        "Hai lần nhập mật khẩu mới không khớp.",
        "The two new passwords differ.",
    ),
    "uerr.console.password_unchanged": (
        "Hãy chọn một mật khẩu khác mật khẩu cũ.",
        "Choose a password other than the current one.",
    ),
    "password.title": ("Đổi mật khẩu", "Change your password"),
    "password.forced": (
        "Quản trị viên yêu cầu bạn đặt mật khẩu mới trước khi tiếp tục.",
        "An administrator asks you to choose a new password first.",
    ),
    "password.current": ("Mật khẩu hiện tại", "Current password"),
    "password.new": ("Mật khẩu mới", "New password"),
    "password.confirm": ("Nhập lại mật khẩu mới", "New password again"),
    "password.submit": ("Đổi mật khẩu", "Change the password"),
    "audit.action.user.create": ("Tạo người dùng", "Created a user"),
    "audit.action.user.role": ("Đổi vai trò người dùng", "Changed a user's role"),
    "audit.action.user.disable": ("Khóa người dùng", "Disabled a user"),
    "audit.action.user.enable": ("Mở khóa người dùng", "Enabled a user"),
    "audit.action.user.force_password": ("Buộc đổi mật khẩu", "Forced a password change"),
    "audit.action.user.password": ("Đổi mật khẩu của mình", "Changed their password"),
}
