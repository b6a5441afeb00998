"""Reference data for the domain-typo suggester in :mod:`helpdesk.validation`.

The data is kept as plain text so that it is easy to review and to extend:

* ``MAILBOX_PROVIDERS``: consumer mailbox domains, most used first. One provider a line: its main
  domain, then the other endings it hands out under the same name (``yahoo.com fr de`` means
  yahoo.com, yahoo.fr, yahoo.de). The line number is the provider's rank; the order follows
  published market-share estimates and is approximate below the first few dozen.
* which endings are real (``TLDS``, ``split_public_suffix``) comes from the Public Suffix List
  that the maintained ``publicsuffixlist`` package ships: never a copy of our own.
* ``COMMON_ENDINGS``: the endings most seen in email addresses, most used first; a broken ending
  is repaired towards these before any other real one.
"""
from __future__ import annotations

import functools
import re
from importlib import resources

from publicsuffixlist import PublicSuffixList

MAILBOX_PROVIDERS_TEXT = """
gmail.com
yahoo.com co.uk fr de it es ca com.au com.br com.mx com.ar co.in in co.jp com.sg com.ph co.id
    com.hk com.tw com.vn co.th com.my co.nz ie gr se dk no fi at be nl pl ro com.tr com.co
    com.pe com.ve cl com.cn cn co.kr co.za com.ec com.uy ch pt cz hu
hotmail.com co.uk fr de it es ca com.au com.br com.ar com.mx be nl se dk no fi at ch gr co.jp jp
    co.th com.tw co.kr co.in co.za co.nz cl com.tr rs ru my sg ph vn hu cz sk pt lt lv ee ie
    co.il com.hk co.id com.vn com.co com.pe com.ve com.ec com.uy
outlook.com fr de it es jp kr com.br com.ar com.au co.uk be cl cz dk ie in pt sa sg sk com.tr
    com.vn co.id co.il co.nz co.th com.gr hu at ph my lv nl se ch
icloud.com
aol.com co.uk fr de it nl be jp ca com.au com.br es se at ch
live.com co.uk fr de it nl be ca com.au com.mx com.ar cl se dk no fi at ch ie in jp ru com.pt pt
    cn co.za hk com.sg com.my ph
msn.com
comcast.net
me.com
mac.com
googlemail.com
ymail.com
protonmail.com ch
proton.me
att.net
verizon.net
sbcglobal.net
bellsouth.net
mail.ru
yandex.ru com ua by kz com.tr
qq.com
163.com
gmx.de at ch
gmx.net
gmx.com co.uk fr es us it eu li
web.de
rocketmail.com
aim.com
mail.com
zoho.com eu in
zohomail.com eu in
naver.com
cox.net
charter.net
earthlink.net
optonline.net
frontier.com
windstream.net
btinternet.com
sky.com
virginmedia.com
talktalk.net
ntlworld.com
orange.fr
wanadoo.fr
free.fr
sfr.fr
laposte.net
t-online.de
freenet.de
libero.it
virgilio.it
rediffmail.com
126.com
sina.com cn
sohu.com
yeah.net
daum.net
hanmail.net
pm.me
tutanota.com de
tuta.io
tuta.com
fastmail.com fm net
hey.com
posteo.de net
mailbox.org
seznam.cz
wp.pl
o2.pl
interia.pl
onet.pl
bigpond.com
bigpond.net.au
optusnet.com.au
shaw.ca
rogers.com
sympatico.ca
telus.net
bell.net
videotron.ca
xtra.co.nz
uol.com.br
bol.com.br
terra.com.br
ig.com.br
globo.com
inbox.ru
list.ru
bk.ru
internet.ru
rambler.ru
ya.ru
ukr.net
email.com
usa.com
inbox.com
lycos.com
excite.com
juno.com
netzero.net
netzero.com
roadrunner.com
rr.com
twc.com
spectrum.net
centurylink.net
q.com
embarqmail.com
frontiernet.net
suddenlink.net
cableone.net
mediacombb.net
wowway.com
rcn.com
pacbell.net
swbell.net
prodigy.net
ameritech.net
flash.net
snet.net
mindspring.com
netscape.net
compuserve.com
cs.com
aliyun.com
foxmail.com
139.com
189.cn
21cn.com
tom.com
188.com
nate.com
kakao.com
korea.com
hushmail.com
hush.com
runbox.com
mailfence.com
startmail.com
disroot.org
riseup.net
keemail.me
tutamail.com
countermail.com
kolabnow.com
arcor.de
online.de
mail.de
email.de
1und1.de
kabelmail.de
vodafone.de
ewetel.net
aon.at
chello.at
a1.net
bluewin.ch
hispeed.ch
sunrise.ch
alice.it
tin.it
tiscali.it
fastwebnet.it
email.it
inwind.it
iol.it
tim.it
pec.it
legalmail.it
aruba.it
telefonica.net
movistar.es
terra.es
ono.com
orange.es
euskaltel.net
sapo.pt
clix.pt
netcabo.pt
ziggo.nl
kpnmail.nl
kpnplanet.nl
planet.nl
home.nl
hetnet.nl
xs4all.nl
chello.nl
casema.nl
upcmail.nl
telenet.be
skynet.be
proximus.be
scarlet.be
voo.be
neuf.fr
club-internet.fr
aliceadsl.fr
bbox.fr
numericable.fr
noos.fr
cegetel.net
voila.fr
9online.fr
libertysurf.fr
telia.com
comhem.se
bredband.net
bahnhof.se
spray.se
passagen.se
online.no
start.no
broadpark.no
getmail.no
jubii.dk
mail.dk
ofir.dk
get2net.dk
stofanet.dk
youmail.dk
elisanet.fi
saunalahti.fi
kolumbus.fi
luukku.com
suomi24.fi
welho.com
onet.eu
interia.eu
op.pl
gazeta.pl
tlen.pl
vp.pl
poczta.fm
go2.pl
email.cz
centrum.cz
atlas.cz
volny.cz
post.cz
azet.sk
centrum.sk
zoznam.sk
post.sk
freemail.hu
citromail.hu
t-online.hu
abv.bg
mail.bg
dir.bg
otenet.gr
hol.gr
forthnet.gr
mynet.com
superonline.com
ttmail.com
walla.co.il
walla.com
bezeqint.net
netvision.net.il
zahav.net.il
i.ua
meta.ua
bigmir.net
online.ua
tut.by
mail.kz
inbox.lv
inbox.lt
one.lt
hot.ee
mail.ee
btopenworld.com
tiscali.co.uk
blueyonder.co.uk
virgin.net
o2.co.uk
orange.net
wanadoo.co.uk
plus.com
zen.co.uk
freeserve.co.uk
lineone.net
tesco.net
fsmail.net
ee.co.uk
eircom.net
iinet.net.au
internode.on.net
tpg.com.au
westnet.com.au
dodo.com.au
ozemail.com.au
adam.com.au
aapt.net.au
slingshot.co.nz
clear.net.nz
orcon.net.nz
vodafone.co.nz
paradise.net.nz
cogeco.ca
eastlink.ca
sasktel.net
mts.net
oi.com.br
r7.com
zipmail.com.br
globomail.com
prodigy.net.mx
terra.com.mx
fibertel.com.ar
speedy.com.ar
arnet.com.ar
ciudad.com.ar
mweb.co.za
telkomsa.net
vodamail.co.za
webmail.co.za
iafrica.com
afrihost.co.za
rediff.com
sify.com
indiatimes.com
docomo.ne.jp
ezweb.ne.jp
softbank.ne.jp
i.softbank.jp
nifty.com
biglobe.ne.jp
ocn.ne.jp
so-net.ne.jp
hinet.net
netvigator.com
pchome.com.tw
singnet.com.sg
pacific.net.sg
streamyx.com
tm.net.my
empal.com
dreamwiz.com
windowslive.com
myself.com
consultant.com
post.com
europe.com
asia.com
iname.com
writeme.com
dr.com
engineer.com
techie.com
accountant.com
cheerful.com
mail.ua
lavabit.com
yopmail.com
y7mail.com
earthling.net
starmail.com
inet.net.au
"""

COMMON_ENDINGS_TEXT = """
com net org edu de co.uk fr ru it nl es ca com.au com.br jp co.jp in co.in pl be ch at se dk no
fi ie gov info biz io co me us eu uk cn com.cn kr co.kr tw com.tw hk com.hk sg com.sg nz co.nz
za co.za mx com.mx ar com.ar br au cz hu ro gr pt tr com.tr il co.il ua by kz org.uk ac.uk
gov.uk net.au org.au edu.au ac.jp ne.jp
"""

def _words(text: str) -> list[str]:
    return text.split()


def _icann_rules() -> list[str]:
    """The rules of the ICANN section of the Public Suffix List the maintained
    ``publicsuffixlist`` package ships (its version is the list's date). The private section
    (blogspot.com, github.io…) is left out: hosting names, never mailbox providers."""
    text = (resources.files("publicsuffixlist") / "public_suffix_list.dat").read_text("utf-8")
    icann = text.split("// ===BEGIN ICANN DOMAINS===", 1)[1].split("// ===END ICANN DOMAINS===")[0]
    return [line.split()[0] for line in icann.splitlines()
            if line.strip() and not line.startswith("//")]


def _punycode(label: str) -> str:
    return "xn--" + label.encode("punycode").decode("ascii")


_RULES = _icann_rules()
_PSL = PublicSuffixList(_RULES)

# Every top-level domain the list names: a few (za, er…) have rules only below them. IDN TLDs
# are listed in Unicode; they are also typed in their xn-- form.
TLDS: frozenset[str] = frozenset(
    form
    for tld in {rule.rpartition(".")[2] for rule in _RULES}
    for form in ((tld,) if tld.isascii() else (tld, _punycode(tld)))
)


@functools.lru_cache(maxsize=65536)
def split_public_suffix(domain: str) -> tuple[str, str] | None:
    """Split ``domain`` into its name and public suffix (``ox.ac.uk``: ``("ox", "ac.uk")``), or
    None when it does not end in a real one or is a suffix itself."""
    suffix = _PSL.publicsuffix(domain, accept_unknown=False)
    if suffix is None and domain.rpartition(".")[2] in TLDS:
        suffix = domain.rpartition(".")[2]
    if not suffix or len(suffix) >= len(domain) or domain[-len(suffix) - 1] != ".":
        return None
    return domain[:-len(suffix) - 1], suffix


COMMON_ENDINGS: tuple[str, ...] = tuple(_words(COMMON_ENDINGS_TEXT))


def _provider_domains(entry: str) -> tuple[str, ...]:
    main, *other_endings = _words(entry)
    name, _ = split_public_suffix(main)
    return (main, *(f"{name}.{ending}" for ending in other_endings))


# One tuple of domains per provider, most used provider first; an indented line continues the
# line above.
MAILBOX_PROVIDERS: tuple[tuple[str, ...], ...] = tuple(
    _provider_domains(entry)
    for entry in re.split(r"\n(?!\s)", MAILBOX_PROVIDERS_TEXT.strip())
)
