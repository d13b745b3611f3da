# Appended to the Sphinx conf.py that `antsibull-docs sphinx-init` generates (scripts/docs.sh).
# The build is offline: no intersphinx inventory can be fetched. References into Ansible's own
# documentation (other collections, common return values, configuration settings) become links to
# their pages on docs.ansible.com; any other unresolved reference still fails the build (-W).
import re as _re

from docutils import nodes as _nodes

intersphinx_mapping = {}
html_title = 'gpulab.provision'
# An example Pygments cannot lex as YAML+Jinja is still shown, only without colours: not an error.
suppress_warnings = ['misc.highlighting_failure']
# The theme's top bar links to Ansible's blog and forum by default: not this collection's.
html_theme_options = {'topbar_links': {}}

_ANSIBLE_DOCS = 'https://docs.ansible.com/ansible/latest/'
_ANSIBLE_LABELS = {
    # antsibull-docs notes "This module has a corresponding action plugin" on report_file's page.
    'action_plugins': 'plugins/action.html',
    'ansible_configuration_settings': 'reference_appendices/config.html',
    'common_return_values': 'reference_appendices/common_return_values.html',
}
_COLLECTION_REF = _re.compile(r'^ansible_collections\.(\w+)\.(\w+)\.(\w+)_(\w+)$')


def _ansible_docs_link(app, env, node, contnode):
    target = node.get('reftarget', '')
    url = None
    if target in _ANSIBLE_LABELS:
        url = _ANSIBLE_DOCS + _ANSIBLE_LABELS[target]
    else:
        match = _COLLECTION_REF.match(target)
        if match and match.group(1, 2) != ('gpulab', 'provision'):
            namespace, collection, name, kind = match.groups()
            url = f'{_ANSIBLE_DOCS}collections/{namespace}/{collection}/{name}_{kind}.html'
    if url is None:
        return None
    reference = _nodes.reference('', '', internal=False, refuri=url)
    reference.append(contnode)
    return reference


def setup(app):
    app.connect('missing-reference', _ansible_docs_link)
