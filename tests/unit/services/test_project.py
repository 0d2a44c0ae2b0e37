from snapkeep.services.project import mounts_from_magento_app_yaml

NEW_STYLE = """
name: mymagento
type: php:8.3
mounts:
    'var':
        source: local
        source_path: var
    "app/etc":
        source: local
        source_path: etc
    pub/media:  # images
        source: local
        source_path: media
    'pub/static':
        source: local
        source_path: static
hooks:
    build: |
        set -e
"""

OLD_STYLE = """
mounts:
  "/var": "shared:files/var"
  "/app/etc": "shared:files/etc"
web:
  locations: {}
"""


def test_mounts_are_read_from_both_shapes_of_magento_app_yaml():
    assert mounts_from_magento_app_yaml(NEW_STYLE) == ["var", "app/etc", "pub/media",
                                                       "pub/static"]
    assert mounts_from_magento_app_yaml(OLD_STYLE) == ["var", "app/etc"]
    assert mounts_from_magento_app_yaml("name: x\n") == []
