# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import (
    MirrorUrlError,
    SecretMasker,
    basic_auth_value,
    check_url,
    join_path,
    mask_url,
    same_host,
    split_credentials,
    url_secrets,
)


def test_mask_url_hides_user_and_password():
    assert mask_url("https://user:pw@h/x") == "https://***@h/x"


def test_mask_url_hides_a_bare_token_as_user():
    assert mask_url("https://ghp_abc123@h:8443/simple") == "https://***@h:8443/simple"


def test_mask_url_hides_query_tokens_and_keeps_other_params():
    assert mask_url("https://h/simple?token=abc&page=2") == "https://h/simple?token=***&page=2"


@pytest.mark.parametrize("key", ["access_token", "api_key", "X-Amz-Signature", "password", "auth"])
def test_mask_url_hides_secret_looking_query_keys(key):
    assert "s3cr3t" not in mask_url("https://h/x?%s=s3cr3t" % key)


def test_mask_url_leaves_plain_urls_alone():
    assert mask_url("https://pypi.tuna.tsinghua.edu.cn/simple") == "https://pypi.tuna.tsinghua.edu.cn/simple"


def test_mask_url_with_at_sign_in_password():
    masked = mask_url("https://user:p@ss@h/x")
    assert masked == "https://***@h/x"


def test_split_credentials_decodes_percent_escapes():
    url, user, password = split_credentials("https://us%40er:p%3Ass@h:8443/simple?x=1")
    assert (url, user, password) == ("https://h:8443/simple?x=1", "us@er", "p:ss")


def test_split_credentials_without_credentials():
    assert split_credentials("https://h/simple") == ("https://h/simple", None, None)


def test_basic_auth_value():
    assert basic_auth_value("user", "pw") == "Basic dXNlcjpwdw=="


def test_url_secrets_lists_raw_and_decoded_forms():
    secrets = url_secrets("https://u:p%40ss@h/x?token=t0k")
    assert {"u:p%40ss", "u:p@ss", "p%40ss", "p@ss", "t0k"} <= set(secrets)


def test_secret_masker_scrubs_free_text():
    masker = SecretMasker(["https://u:hunter22@h/x?token=t0k3n"])
    text = "error for https://u:hunter22@h/x?token=t0k3n: nonnumeric port 'hunter22@h'"
    scrubbed = masker(text)
    assert "hunter22" not in scrubbed and "t0k3n" not in scrubbed


def test_secret_masker_masks_any_userinfo_in_text():
    assert SecretMasker()("see http://alice:pw@example.test/") == "see http://***@example.test/"


def test_join_path_keeps_query_string():
    assert join_path("https://h/simple?token=x", "pip", "") == "https://h/simple/pip/?token=x"


def test_join_path_collapses_slashes():
    assert join_path("https://h/anaconda/", "/pkgs/main/", "noarch", "repodata.json") == \
        "https://h/anaconda/pkgs/main/noarch/repodata.json"


def test_same_host_treats_http_to_https_upgrade_as_same():
    assert same_host("http://h/x", "https://h/y")
    assert not same_host("https://h/x", "https://other/x")
    assert not same_host("https://h:8443/x", "https://h/x")


@pytest.mark.parametrize("url", ["file:///srv/mirror", "ftp://h/pub", "h/simple", "//h/simple"])
def test_check_url_rejects_non_http_schemes(url):
    with pytest.raises(MirrorUrlError, match="scheme must be http or https"):
        check_url(url, insecure=True)


def test_check_url_rejects_plain_http_without_insecure():
    with pytest.raises(MirrorUrlError, match="use https, or set insecure: true"):
        check_url("http://h/simple")


def test_check_url_accepts_plain_http_with_insecure():
    check_url("http://h/simple", insecure=True)


def test_check_url_rejects_path_on_bare_host():
    with pytest.raises(MirrorUrlError, match=r"scheme://host\[:port\]"):
        check_url("https://h/v2", bare_host=True)


def test_check_url_accepts_bare_host_with_port_and_slash():
    check_url("https://h:5000/", bare_host=True)


def test_check_url_error_never_shows_credentials():
    with pytest.raises(MirrorUrlError) as err:
        check_url("ftp://user:hunter22@h/pub")
    assert "hunter22" not in str(err.value)


def test_check_url_rejects_bad_port():
    with pytest.raises(MirrorUrlError, match="does not parse"):
        check_url("https://h:99999/x")


# ------------------------------------------------------------------ strict parsing

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import parse_mirror_url  # noqa: E402


@pytest.mark.parametrize("url,what", [
    ("https://h/simple\n[global]\nindex-url = https://evil/simple", "control character"),
    ("https://h/simple\r", "control character"),
    ("https://h/sim ple", "a space"),
    ('https://h/simple"', "character '\"'"),
    ("https://h/simple'", "character \"'\""),
    ("https://h/simple\\x", "character '\\\\'"),
    ("https://h/simple\x00", "control character"),
    ("https://h/simpl\u00e9", "non-ASCII"),
    ("https://h/simple]\n", "control character"),
])
def test_parse_refuses_characters_outside_rfc3986(url, what):
    with pytest.raises(MirrorUrlError, match="contains .*%s" % __import__("re").escape(what)):
        parse_mirror_url(url)


def test_parse_names_the_fix_for_a_bad_percent_escape():
    with pytest.raises(MirrorUrlError, match="not a %XX escape"):
        parse_mirror_url("https://h/simple%zz")


@pytest.mark.parametrize("url", [
    "https://user:pa/ss@h/simple",       # '/' in the password: urlsplit reads 'ss@h' as path
    "https://user:pa#ss@h/simple",       # '#' in the password: urlsplit reads a fragment
    "https://user:pa?ss@h/simple",
])
def test_password_with_unencoded_delimiters_is_refused_and_never_shown(url):
    with pytest.raises(MirrorUrlError) as err:
        parse_mirror_url(url)
    message = str(err.value)
    assert "ss@h" not in message and "pa" not in message.replace("path", "").replace("part", "").replace("password", "")
    assert "percent-encode" in message
    assert "***@h/simple" in message


@pytest.mark.parametrize("url", [
    "https://user:pa/ss@h/simple",
    "https://user:pa#ss@h/simple",
    "not a url https://user:pa/ss@h/x and more",
])
def test_mask_url_hides_passwords_the_parser_splits(url):
    masked = mask_url(url)
    assert "pa/ss" not in masked and "pa#ss" not in masked and "user" not in masked
    assert "***@h" in masked


@pytest.mark.parametrize("url", [
    "https://h/simple?token=abc",
    "https://h/simple#frag",
    "https://h/simple?",
])
def test_query_and_fragment_are_refused_with_a_masked_message(url):
    with pytest.raises(MirrorUrlError, match="query string or fragment") as err:
        parse_mirror_url(url)
    assert "abc" not in str(err.value)


def test_docker_mirror_must_be_bare_and_without_credentials():
    with pytest.raises(MirrorUrlError, match="username|user or password"):
        parse_mirror_url("https://u:p@hub.example", kind="docker")
    with pytest.raises(MirrorUrlError, match="without a path; use https://hub.example"):
        parse_mirror_url("https://hub.example/v2/", kind="docker")
    parsed = parse_mirror_url("https://hub.example:5000/", kind="docker")
    assert parsed.url == "https://hub.example:5000"


@pytest.mark.parametrize("url,host,hostport,port", [
    ("http://[fd00::1]:8080/simple", "fd00::1", "[fd00::1]:8080", 8080),
    ("http://[::1]/simple", "::1", "[::1]", None),
    ("http://127.0.0.2:3141/root/pypi/+simple/", "127.0.0.2", "127.0.0.2:3141", 3141),
    ("https://PyPI.Tuna.Tsinghua.edu.cn/simple", "pypi.tuna.tsinghua.edu.cn", "PyPI.Tuna.Tsinghua.edu.cn", None),
])
def test_parse_keeps_ipv6_brackets_in_hostport(url, host, hostport, port):
    parsed = parse_mirror_url(url, insecure=True)
    assert (parsed.host, parsed.hostport, parsed.port) == (host, hostport, port)


def test_parse_refuses_bad_hosts():
    for url in ("https://fd00::1/simple", "https://-bad-.example/simple", "https://a..b/simple"):
        with pytest.raises(MirrorUrlError):
            parse_mirror_url(url)


def test_parse_splits_credentials_and_keeps_them_out_of_as_dict():
    parsed = parse_mirror_url("https://us%40er:p%2Fw@h/simple")
    assert (parsed.username, parsed.password) == ("us@er", "p/w")
    assert parsed.base_url == "https://h/simple"
    assert parsed.has_credentials
    assert "p%2Fw" not in repr(parsed) and "p%2Fw" not in str(parsed.as_dict())


def test_mask_url_without_a_scheme_hides_user_password_and_query_token():
    masked = mask_url("user:pw@host/x?token=abc&page=2")
    assert masked == "***@host/x?token=***&page=2"
