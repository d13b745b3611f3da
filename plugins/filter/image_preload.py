# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_preload role filters: thin glue over plugins/module_utils/image_archive_entries.py and
image_archive_report.py, which share the image_archive module's rules for checksums and names.

Each filter is documented in plugins/filter/<name>.yml (ansible-doc -t filter gpulab.provision.<name>).
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_entries, image_archive_report
from ansible_collections.gpulab.provision.plugins.plugin_utils.filter_errors import named_filter


class FilterModule:
    """gpulab.provision image_preload filters."""

    def filters(self):
        return {
            name: named_filter(name, function)
            for name, function in (
                ("image_preload_entries", image_archive_entries.preload_entries),
                ("image_preload_urls", image_archive_entries.source_urls),
                ("image_preload_present", image_archive_entries.mark_present),
                ("image_preload_fetch", image_archive_entries.fetch_list),
                ("image_preload_report", image_archive_report.preload_report),
            )
        }
