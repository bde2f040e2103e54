"""The throwaway lab90 graders the evidence tests record and replay on this machine (the local target): one
check that passes everywhere and one that reads a file the test writes, so a test flips a result by writing it.
`{path}` is left for the test to format in; each test adds the check its own subject needs."""

LINUX_AND_FILE = '''
from kubelab.engine import check, expect_equal

@check("Kernel is Linux", on="all", points=1, hint="h")
def test_linux(host):
    expect_equal(host.system_info.type, "linux")

@check("A file says yes", on="master", points=2, hint="write yes into the file")
def test_file(host):
    expect_equal(host.file({path!r}).content_string.strip(), "yes", what="the file")
'''
