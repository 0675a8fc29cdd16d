from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.views import APIView

from oms.api import HasRole
from oms.roles import ADMIN, OPERATIONS

from . import selectors, services
from .models import SettlementFile


class SettlementFileSerializer(serializers.ModelSerializer):
    custodian = serializers.CharField(source="custodian.code")

    class Meta:
        model = SettlementFile
        fields = [
            "id",
            "custodian",
            "trade_date",
            "version",
            "filename",
            "checksum",
            "row_count",
            "differences",
            "created_at",
        ]


class SettlementFileListView(generics.ListAPIView):
    """Settlement files, newest trade date first (Operations and Admin)."""

    permission_classes = [HasRole.of(OPERATIONS, ADMIN)]
    serializer_class = SettlementFileSerializer
    filterset_fields = ["trade_date", "custodian__code"]

    def get_queryset(self):
        return selectors.settlement_files()


def settlement_file_response(sf: SettlementFile) -> HttpResponse:
    response = HttpResponse(sf.content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{sf.filename}"'
    response["X-Checksum-SHA256"] = sf.checksum
    return response


class SettlementFileDownloadView(APIView):
    """The file's CSV; every download is on the audit trail."""

    permission_classes = [HasRole.of(OPERATIONS, ADMIN)]

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, pk: int):
        sf = services.settlement_file_download(file_id=pk, actor=request.user, as_of=timezone.now())
        return settlement_file_response(sf)
