"""The back-office API: what Operations does on its pages, for programs. Allocations by block,
account and date; a block's trading days; finalising a day; generating, listing and
downloading settlement files. Operations and Admin only.

Every input is checked before anything is read: a query parameter nobody knows, or one given
twice, is a 400 naming it, like a bad value; an id in the path that names nothing is a JSON
404, whatever it looks like."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from oms.api import HasRole
from oms.errors import NotFound
from oms.roles import ADMIN, OPERATIONS
from oms.schema import ErrorOut

from . import selectors, services
from .models import SettlementFile
from .serializers import (
    BIGINT_MAX,
    ISO_DATE,
    AllocationFilter,
    AllocationOut,
    BlockDayOut,
    FinaliseInput,
    GenerateInput,
    NoParams,
    PageParams,
    SettlementFileFilter,
    SettlementFileGeneratedOut,
    SettlementFileOut,
)

OPERATIONS_ONLY = HasRole.of(OPERATIONS, ADMIN)

# --- what every endpoint here shares -----------------------------------------------------------


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorOut, description=description)


BAD_INPUT = _error(
    "a parameter or field is unknown, given twice or invalid: error.fields names each one"
)
UNAUTHENTICATED = _error("no credentials, or a token that is not valid (WWW-Authenticate: Token)")
REFUSED = _error("signed in, but neither Operations nor Admin")
PAGE_PAST_END = _error("the page asked for is past the last one")

BLOCK_ID = OpenApiParameter("block_id", int, OpenApiParameter.PATH, description="block id")
TRADE_DATE = OpenApiParameter(
    "trade_date", OpenApiTypes.DATE, OpenApiParameter.PATH, description="YYYY-MM-DD"
)
FILE_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="settlement file id")


def query_params(request, params: type[serializers.Serializer]) -> dict:
    """The query string, checked against `params`: each name known and given once, each value
    valid (an empty value counts as not given). Raises a 400 naming what is wrong."""
    fields = params().fields
    given = request.query_params
    twice = {
        name[:60]: ["Give this parameter once."] for name in given if len(given.getlist(name)) > 1
    }
    if twice:
        raise serializers.ValidationError(twice)
    data = {name: value for name, value in given.items() if value != "" or name not in fields}
    checked = params(data=data, context={"request": request})
    checked.is_valid(raise_exception=True)
    return checked.validated_data


def path_id(raw: str, what: str) -> int:
    """Any text in the path reaches the view, so an id that is not a number (or is beyond any
    id) is the same JSON 404 as a number nothing has."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) > BIGINT_MAX:
        raise NotFound(f"{what} {raw[:40]} does not exist.")
    return int(raw)


def path_date(raw: str):
    try:
        return serializers.DateField(input_formats=ISO_DATE).run_validation(raw)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({"trade_date": exc.detail}) from exc


class _BackOfficeList(GenericAPIView):
    permission_classes = [OPERATIONS_ONLY]
    filter_backends: list = []  # the filter serializers read and check the query string

    def page_of(self, queryset, out: type[serializers.Serializer]) -> Response:
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(out(page, many=True).data)


# --- allocations and trading days --------------------------------------------------------------


class AllocationListView(_BackOfficeList):
    """Account allocations: one per account per block per trade date, the current version
    unless include_replaced=true. Newest trade date first, then block and account. A block id
    or account code that names nothing is a 400 naming the parameter."""

    serializer_class = AllocationOut

    @extend_schema(
        parameters=[AllocationFilter],
        responses={
            200: AllocationOut(many=True),
            400: BAD_INPUT,
            401: UNAUTHENTICATED,
            403: REFUSED,
            404: PAGE_PAST_END,
        },
    )
    def get(self, request):
        filters = query_params(request, AllocationFilter)
        allocations = selectors.allocations(
            block_id=filters.get("block"),
            account_code=filters.get("account"),
            trade_date=filters.get("trade_date"),
            include_replaced=filters.get("include_replaced", False),
        )
        return self.page_of(allocations, AllocationOut)


class BlockDayListView(_BackOfficeList):
    """A block's trading days, oldest first, each with its orders' shares."""

    serializer_class = BlockDayOut

    @extend_schema(
        parameters=[BLOCK_ID, PageParams],
        responses={
            200: BlockDayOut(many=True),
            400: BAD_INPUT,
            401: UNAUTHENTICATED,
            403: REFUSED,
            404: _error("no such block, or the page is past the last one"),
        },
    )
    def get(self, request, block_id: str):
        query_params(request, PageParams)
        pk = path_id(block_id, "Block")
        if not selectors.block_exists(block_id=pk):
            raise NotFound(f"Block {pk} does not exist.")
        return self.page_of(selectors.block_days_with_shares(block_id=pk), BlockDayOut)


class DayFinaliseView(APIView):
    """Finalise one trading day of a block: each account's allocation at the day's average
    price, its commission and fees, positions and cash booked again at that price (audited as
    allocation.finalise). Answers with the allocations written."""

    permission_classes = [OPERATIONS_ONLY]

    @extend_schema(
        parameters=[BLOCK_ID, TRADE_DATE],
        request=None,
        responses={
            200: AllocationOut(many=True),
            400: BAD_INPUT,
            401: UNAUTHENTICATED,
            403: REFUSED,
            404: _error("no such block, never routed, or it did not trade on that date"),
            409: _error(
                "day_finalised: the day is final already; block_not_done: the block is still "
                "working and the date is today"
            ),
        },
    )
    def post(self, request, block_id: str, trade_date: str):
        query_params(request, NoParams)
        pk = path_id(block_id, "Block")
        day = path_date(trade_date)
        FinaliseInput(data=request.data).is_valid(raise_exception=True)
        written = services.allocation_day_finalise(
            block_id=pk, trade_date=day, as_of=timezone.now(), actor=request.user
        )
        allocations = selectors.allocations_by_ids(allocation_ids=[a.pk for a in written])
        return Response(AllocationOut(allocations, many=True).data)


# --- settlement files --------------------------------------------------------------------------


class SettlementFileListView(_BackOfficeList):
    """Settlement files, every version: newest trade date first, then custodian, newest
    version first. The content itself is downloaded one file at a time. A custodian code that
    names nothing is a 400 naming the parameter."""

    serializer_class = SettlementFileOut

    @extend_schema(
        parameters=[SettlementFileFilter],
        responses={
            200: SettlementFileOut(many=True),
            400: BAD_INPUT,
            401: UNAUTHENTICATED,
            403: REFUSED,
            404: PAGE_PAST_END,
        },
    )
    def get(self, request):
        filters = query_params(request, SettlementFileFilter)
        files = selectors.settlement_files_filtered(
            trade_date=filters.get("trade_date"), custodian_code=filters.get("custodian")
        )
        return self.page_of(files, SettlementFileOut)


class SettlementFileGenerateView(APIView):
    """Write the settlement files of a trade date: one per custodian with trades that day (or
    an earlier version). A custodian whose latest version already says the same gets that
    version back, created false; nothing new is written for it."""

    permission_classes = [OPERATIONS_ONLY]

    @extend_schema(
        request=GenerateInput,
        responses={
            201: OpenApiResponse(
                SettlementFileGeneratedOut(many=True), description="at least one new version"
            ),
            200: OpenApiResponse(
                SettlementFileGeneratedOut(many=True),
                description="nothing new: every file was up to date (or there were no trades)",
            ),
            400: BAD_INPUT,
            401: UNAUTHENTICATED,
            403: REFUSED,
        },
    )
    def post(self, request):
        query_params(request, NoParams)
        body = GenerateInput(data=request.data)
        body.is_valid(raise_exception=True)
        results = services.settlement_files_generate(
            trade_date=body.validated_data["trade_date"], as_of=timezone.now(), actor=request.user
        )
        files = []
        for sf, created in results:
            sf.created = created
            files.append(sf)
        written = any(created for _, created in results)
        return Response(
            SettlementFileGeneratedOut(files, many=True).data,
            status=status.HTTP_201_CREATED if written else status.HTTP_200_OK,
        )


def settlement_file_response(sf: SettlementFile) -> HttpResponse:
    response = HttpResponse(sf.content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{sf.filename}"'
    response["X-Checksum-SHA256"] = sf.checksum
    return response


class JsonErrorsWhateverAccepted(BaseContentNegotiation):
    """The download answers CSV, so a client may well say Accept: text/csv; its errors are
    JSON all the same (rather than a 406 before the file is even looked up)."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class SettlementFileDownloadView(APIView):
    """The file's CSV; every download is on the audit trail (settlement_file.download)."""

    permission_classes = [OPERATIONS_ONLY]
    content_negotiation_class = JsonErrorsWhateverAccepted

    @extend_schema(
        parameters=[FILE_ID],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            400: BAD_INPUT,
            401: UNAUTHENTICATED,
            403: REFUSED,
            404: _error("no such file"),
        },
    )
    def get(self, request, pk: str):
        query_params(request, NoParams)
        sf = services.settlement_file_download(
            file_id=path_id(pk, "Settlement file"), actor=request.user, as_of=timezone.now()
        )
        return settlement_file_response(sf)
