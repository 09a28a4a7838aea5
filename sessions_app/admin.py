from django import forms
from django.conf import settings as django_settings
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from lizzy.errors import ApplicationError
from lizzy.formats import console_timestamp
from lizzy.permissions import READ_CUSTOMER_MESSAGES
from lizzy.phone import mask_phone, phone_ref
from lizzy.redis import RedisUnavailable
from sessions_app.admin_search import SealedSearchAdmin
from sessions_app.models import (
    Customer,
    Equipment,
    EquipmentModel,
    HandoffRequest,
    Part,
    PartsOrder,
    ServiceRequest,
    SessionStoreModeChange,
    SessionStoreSetting,
    SmsContact,
    Transaction,
)
from sessions_app.selectors import flush_backlog, flush_last, session_store_stats, shadow_read_stats
from sessions_app.services.crm import handoff_close
from sessions_app.services.session_documents import CUSTOMER_TEXT_HIDDEN
from sessions_app.services.store_modes import store_mode_check_transition, store_mode_set

PROBLEM_LIST_CHARS = 80  # a list row; the whole text is on the request's page


class EquipmentInline(admin.TabularInline):
    model = Equipment
    extra = 0


@admin.register(Customer)
class CustomerAdmin(SealedSearchAdmin):
    list_display = ("customer_id", "name", "phone", "email", "updated_at")
    search_fields = ("customer_id", "name", "phone", "email")
    inlines = [EquipmentInline]


@admin.register(Equipment)
class EquipmentAdmin(admin.ModelAdmin):
    list_display = ("equipment_id", "name", "serial_number", "unit_type", "model", "owner")
    list_filter = ("unit_type", "model")
    search_fields = ("equipment_id", "name", "serial_number", "model", "owner__customer_id", "owner__name")
    list_select_related = ("owner",)
    autocomplete_fields = ("owner",)


@admin.register(EquipmentModel)
class EquipmentModelAdmin(admin.ModelAdmin):
    list_display = ("name", "brand", "unit_type")
    list_filter = ("unit_type", "brand")
    search_fields = ("name", "brand")


@admin.register(Part)
class PartAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "unit_type", "price", "stock")
    list_filter = ("unit_type", "compatible_models")
    search_fields = ("sku", "name", "compatible_models__name")
    filter_horizontal = ("compatible_models",)


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = ("customer", "date", "amount", "description")
    list_filter = ("date",)
    search_fields = ("customer__customer_id", "customer__name", "description")
    list_select_related = ("customer",)
    date_hierarchy = "date"
    autocomplete_fields = ("customer",)


@admin.register(PartsOrder)
class PartsOrderAdmin(admin.ModelAdmin):
    list_display = ("reference", "customer", "parts", "equipment", "status", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("reference", "customer__customer_id", "customer__name", "equipment__equipment_id", "lines")
    readonly_fields = ("reference",)
    list_select_related = ("customer", "equipment")
    autocomplete_fields = ("customer", "equipment")

    @admin.display(description="parts")
    def parts(self, obj: PartsOrder) -> str:
        """ "2 × Honda HRX217 Spark plug (HONHRX217-SP)": what to put on the counter, per line."""
        lines = [line for line in obj.lines or [] if isinstance(line, dict)]
        if not lines:
            return "-"
        return format_html_join(
            format_html("<br>"),
            '{} × {} <span class="quiet">({})</span>',
            (
                (line.get("quantity", 1), line.get("name") or line.get("sku", "?"), line.get("sku", "?"))
                for line in lines
            ),
        )


@admin.register(ServiceRequest)
class ServiceRequestAdmin(admin.ModelAdmin):
    list_display = ("reference", "customer", "problem", "equipment", "status", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("reference", "customer__customer_id", "customer__name", "problem_description")
    readonly_fields = ("reference",)
    list_select_related = ("customer", "equipment")
    autocomplete_fields = ("customer", "equipment")

    @admin.display(description="problem", ordering="problem_description")
    def problem(self, obj: ServiceRequest) -> str:
        return Truncator(obj.problem_description).chars(PROBLEM_LIST_CHARS)

    @admin.display(description="problem")
    def problem_hidden(self, obj: ServiceRequest) -> str:
        return CUSTOMER_TEXT_HIDDEN

    def get_list_display(self, request):  # noqa: ANN001, ANN201
        # The problem is what the customer wrote: shown only to lizzy.read_customer_messages.
        columns = tuple(super().get_list_display(request))
        if request.user.has_perm(READ_CUSTOMER_MESSAGES):
            return columns
        return tuple("problem_hidden" if column == "problem" else column for column in columns)

    def get_search_fields(self, request):  # noqa: ANN001, ANN201
        fields = super().get_search_fields(request)
        if not request.user.has_perm(READ_CUSTOMER_MESSAGES):
            fields = tuple(field for field in fields if field != "problem_description")  # no probing by search
        return fields

    def get_exclude(self, request, obj=None):  # noqa: ANN001, ANN201
        excluded = tuple(super().get_exclude(request, obj) or ())
        if not request.user.has_perm(READ_CUSTOMER_MESSAGES):
            excluded += ("problem_description",)
        return excluded


# --- Session store mode (docs/SESSION_STORE.md) ---------------------------------------------------


class SessionStoreSettingForm(forms.ModelForm):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="Why (kept in history)."
    )
    force = forms.BooleanField(required=False, help_text="Override the divergence/backlog guard (needs a reason).")

    class Meta:
        model = SessionStoreSetting
        fields = ("mode",)

    def clean(self) -> dict:
        data = super().clean()
        current = self.instance.mode if self.instance.pk else django_settings.LIZZY_SESSION_STORE_DEFAULT_MODE
        try:
            store_mode_check_transition(
                current=current, target=data.get("mode"), reason=data.get("reason", ""), force=data.get("force", False)
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc
        return data


@admin.register(SessionStoreSetting)
class SessionStoreSettingAdmin(admin.ModelAdmin):
    form = SessionStoreSettingForm
    list_display = ("mode", "changed_at", "changed_by", "reason")
    readonly_fields = ("changed_at", "changed_by", "store_health")

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return super().has_add_permission(request) and not SessionStoreSetting.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001
        store_mode_set(
            mode=form.cleaned_data["mode"],
            actor=f"admin:{request.user.get_username()}",
            reason=form.cleaned_data.get("reason", ""),
            force=form.cleaned_data.get("force", False),
        )

    @admin.display(description="Store health")
    def store_health(self, obj: SessionStoreSetting) -> str:
        stats = session_store_stats()
        try:
            backlog = flush_backlog()
            shadow = shadow_read_stats()
            last = flush_last() or {}
            redis_part = format_html(
                "Write-behind backlog: {} (oldest {} s); last flush {} wrote {}; divergences (last {} s): {}",
                backlog.size,
                round(backlog.oldest_age_seconds or 0, 1),
                console_timestamp(last["finishedAt"]) if last.get("finishedAt") else "never",
                last.get("written", 0),
                shadow["window_seconds"],
                shadow["divergences"],
            )
        except RedisUnavailable as exc:
            redis_part = format_html("Redis: {}", exc.message)
        hit_rate = "n/a" if stats.hit_rate is None else f"{stats.hit_rate:.1%}"
        return format_html(
            "Hit rate (this process): {}; breaker: {}; latency: {}<br>{}",
            hit_rate,
            stats.breaker,
            stats.latency,
            redis_part,
        )


@admin.register(SessionStoreModeChange)
class SessionStoreModeChangeAdmin(admin.ModelAdmin):
    list_display = ("changed_at", "from_mode", "to_mode", "changed_by", "forced", "reason")
    list_filter = ("to_mode", "forced")

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


# --- SMS workflow (issue 3) ----------------------------------------------------------------------


@admin.register(HandoffRequest)
class HandoffRequestAdmin(SealedSearchAdmin):
    """Customers who texted "talk to a person": ops call or text them back, then close the row."""

    list_display = ("id", "customer", "masked_phone", "node", "status", "session_link", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("customer__customer_id", "customer__name", "phone")
    list_select_related = ("customer",)
    readonly_fields = ("source_message_sid", "created_at")
    actions = ("close_handoffs",)

    @admin.display(description="phone", ordering="phone")
    def masked_phone(self, obj: HandoffRequest) -> str:
        """Masked like the live sessions list; the number to call back is on the hand-off's own page."""
        return mask_phone(obj.phone)

    @admin.display(description="conversation")
    def session_link(self, obj: HandoffRequest) -> str:
        url = reverse("admin:sessions_live_detail", args=[phone_ref(obj.phone)])
        return format_html('<a href="{}" class="handoff-session">Open the session</a>', url)

    @admin.action(description="Close selected hand-offs", permissions=["change"])
    def close_handoffs(self, request, queryset):
        closed = handoff_close(handoff_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Closed {closed} hand-off{'' if closed == 1 else 's'}.")


@admin.register(SmsContact)
class SmsContactAdmin(SealedSearchAdmin):
    list_display = ("id", "masked_phone", "opted_out", "opted_out_at", "opted_in_at", "last_session_started_at")
    list_filter = ("opted_out",)
    search_fields = ("phone",)

    @admin.display(description="phone", ordering="phone")
    def masked_phone(self, obj: SmsContact) -> str:
        """Masked like the live sessions and hand-off lists; the full number is on the contact's own page."""
        return mask_phone(obj.phone)


# The ops console pages and panels of this app: live sessions (DynamoDB, not the ORM), cached entries, dashboard.
from sessions_app import admin_cache, admin_panels, admin_sessions  # noqa: E402, F401
