from tests.plugins.plugin_path import add_plugin_to_path

add_plugin_to_path()
