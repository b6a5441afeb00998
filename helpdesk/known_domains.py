"""Reference data for the domain-typo suggester in :mod:`helpdesk.validation`.

The data is kept as plain text so that it is easy to review and to extend:

* ``MAILBOX_PROVIDERS``: consumer mailbox domains, most used first. One provider a line: its main
  domain, then the other endings it hands out under the same name (``yahoo.com fr de`` means
  yahoo.com, yahoo.fr, yahoo.de). The line number is the provider's rank; the order follows
  published market-share estimates and is approximate below the first few dozen.
* ``TLDS`` and ``SECOND_LEVEL_SUFFIXES``: every top-level domain delegated by IANA and the common
  second-level suffixes under them (co.uk, com.au, ac.jp, ...), taken from the ICANN section of the
  Public Suffix List (publicsuffix.org, 2023-02-09). They say which endings are real.
* ``COMMON_ENDINGS``: the endings most seen in email addresses, most used first; a broken ending
  is repaired towards these before any other real one.
"""
from __future__ import annotations

import re

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

TLDS_TEXT = """
aaa aarp abarth abb abbott abbvie abc able abogado abudhabi ac academy accenture accountant
accountants aco actor ad ads adult ae aeg aero aetna af afl africa ag agakhan agency ai aig
airbus airforce airtel akdn al alfaromeo alibaba alipay allfinanz allstate ally alsace alstom am
amazon americanexpress americanfamily amex amfam amica amsterdam analytics android anquan anz ao
aol apartments app apple aq aquarelle ar arab aramco archi army arpa art arte as asda asia
associates at athleta attorney au auction audi audible audio auspost author auto autos avianca
aw aws ax axa az azure ba baby baidu banamex bananarepublic band bank bar barcelona barclaycard
barclays barefoot bargains baseball basketball bauhaus bayern bb bbc bbt bbva bcg bcn bd be
beats beauty beer bentley berlin best bestbuy bet bf bg bh bharti bi bible bid bike bing bingo
bio biz bj black blackfriday blockbuster blog bloomberg blue bm bms bmw bn bnpparibas bo boats
boehringer bofa bom bond boo book booking bosch bostik boston bot boutique box br bradesco
bridgestone broadway broker brother brussels bs bt build builders business buy buzz bv bw by bz
bzh ca cab cafe cal call calvinklein cam camera camp canon capetown capital capitalone car
caravan cards care career careers cars casa case cash casino cat catering catholic cba cbn cbre
cbs cc cd center ceo cern cf cfa cfd cg ch chanel channel charity chase chat cheap chintai
christmas chrome church ci cipriani circle cisco citadel citi citic city cityeats ck cl claims
cleaning click clinic clinique clothing cloud club clubmed cm cn co coach codes coffee college
cologne com comcast commbank community company compare computer comsec condos construction
consulting contact contractors cooking cookingchannel cool coop corsica country coupon coupons
courses cpa cr credit creditcard creditunion cricket crown crs cruise cruises cu cuisinella cv
cw cx cy cymru cyou cz dabur dad dance data date dating datsun day dclk dds de deal dealer deals
degree delivery dell deloitte delta democrat dental dentist desi design dev dhl diamonds diet
digital direct directory discount discover dish diy dj dk dm dnp do docs doctor dog domains dot
download drive dtv dubai dunlop dupont durban dvag dvr dz earth eat ec eco edeka edu education
ee eg email emerck energy engineer engineering enterprises epson equipment er ericsson erni es
esq estate et etisalat eu eurovision eus events exchange expert exposed express extraspace fage
fail fairwinds faith family fan fans farm farmers fashion fast fedex feedback ferrari ferrero fi
fiat fidelity fido film final finance financial fire firestone firmdale fish fishing fit fitness
fj fk flickr flights flir florist flowers fly fm fo foo food foodnetwork football ford forex
forsale forum foundation fox fr free fresenius frl frogans frontdoor frontier ftr fujitsu fun
fund furniture futbol fyi ga gal gallery gallo gallup game games gap garden gay gb gbiz gd gdn
ge gea gent genting george gf gg ggee gh gi gift gifts gives giving gl glass gle global globo gm
gmail gmbh gmo gmx gn godaddy gold goldpoint golf goo goodyear goog google gop got gov gp gq gr
grainger graphics gratis green gripe grocery group gs gt gu guardian gucci guge guide guitars
guru gw gy hair hamburg hangout haus hbo hdfc hdfcbank health healthcare help helsinki here
hermes hgtv hiphop hisamitsu hitachi hiv hk hkt hm hn hockey holdings holiday homedepot
homegoods homes homesense honda horse hospital host hosting hot hoteles hotels hotmail house how
hr hsbc ht hu hughes hyatt hyundai ibm icbc ice icu id ie ieee ifm ikano il im imamat imdb immo
immobilien in inc industries infiniti info ing ink institute insurance insure int international
intuit investments io ipiranga iq ir irish is ismaili ist istanbul it itau itv jaguar java jcb
je jeep jetzt jewelry jio jll jm jmp jnj jo jobs joburg jot joy jp jpmorgan jprs juegos juniper
kaufen kddi ke kerryhotels kerrylogistics kerryproperties kfh kg kh ki kia kids kim kinder
kindle kitchen kiwi km kn koeln komatsu kosher kp kpmg kpn kr krd kred kuokgroup kw ky kyoto kz
la lacaixa lamborghini lamer lancaster lancia land landrover lanxess lasalle lat latino latrobe
law lawyer lb lc lds lease leclerc lefrak legal lego lexus lgbt li lidl life lifeinsurance
lifestyle lighting like lilly limited limo lincoln linde link lipsy live living lk llc llp loan
loans locker locus lol london lotte lotto love lpl lplfinancial lr ls lt ltd ltda lu lundbeck
luxe luxury lv ly ma macys madrid maif maison makeup man management mango map market marketing
markets marriott marshalls maserati mattel mba mc mckinsey md me med media meet melbourne meme
memorial men menu merckmsd mg mh miami microsoft mil mini mint mit mitsubishi mk ml mlb mls mm
mma mn mo mobi mobile moda moe moi mom monash money monster mormon mortgage moscow moto
motorcycles mov movie mp mq mr ms msd mt mtn mtr mu museum music mutual mv mw mx my mz na nab
nagoya name natura navy nba nc ne nec net netbank netflix network neustar new news next
nextdirect nexus nf nfl ng ngo nhk ni nico nike nikon ninja nissan nissay nl no nokia
northwesternmutual norton now nowruz nowtv np nr nra nrw ntt nu nyc nz obi observer office
okinawa olayan olayangroup oldnavy ollo om omega one ong onion onl online ooo open oracle orange
org organic origins osaka otsuka ott ovh pa page panasonic paris pars partners parts party
passagens pay pccw pe pet pf pfizer pg ph pharmacy phd philips phone photo photography photos
physio pics pictet pictures pid pin ping pink pioneer pizza pk pl place play playstation
plumbing plus pm pn pnc pohl poker politie porn post pr pramerica praxi press prime pro prod
productions prof progressive promo properties property protection pru prudential ps pt pub pw
pwc py qa qpon quebec quest racing radio re read realestate realtor realty recipes red redstone
redumbrella rehab reise reisen reit reliance ren rent rentals repair report republican rest
restaurant review reviews rexroth rich richardli ricoh ril rio rip ro rocher rocks rodeo rogers
room rs rsvp ru rugby ruhr run rw rwe ryukyu sa saarland safe safety sakura sale salon samsclub
samsung sandvik sandvikcoromant sanofi sap sarl sas save saxo sb sbi sbs sc sca scb schaeffler
schmidt scholarships school schule schwarz science scot sd se search seat secure security seek
select sener services seven sew sex sexy sfr sg sh shangrila sharp shaw shell shia shiksha shoes
shop shopping shouji show showtime si silk sina singles site sj sk ski skin sky skype sl sling
sm smart smile sn sncf so soccer social softbank software sohu solar solutions song sony soy spa
space sport spot sr srl ss st stada staples star statebank statefarm stc stcgroup stockholm
storage store stream studio study style su sucks supplies supply support surf surgery suzuki sv
swatch swiss sx sy sydney systems sz tab taipei talk taobao target tatamotors tatar tattoo tax
taxi tc tci td tdk team tech technology tel temasek tennis teva tf tg th thd theater theatre
tiaa tickets tienda tiffany tips tires tirol tj tjmaxx tjx tk tkmaxx tl tm tmall tn to today
tokyo tools top toray toshiba total tours town toyota toys tr trade trading training travel
travelchannel travelers travelersinsurance trust trv tt tube tui tunes tushu tv tvs tw tz ua
ubank ubs ug uk unicom university uno uol ups us uy uz va vacations vana vanguard vc ve vegas
ventures verisign versicherung vet vg vi viajes video vig viking villas vin vip virgin visa
vision viva vivo vlaanderen vn vodka volkswagen volvo vote voting voto voyage vu vuelos wales
walmart walter wang wanggou watch watches weather weatherchannel webcam weber website wedding
weibo weir wf whoswho wien wiki williamhill win windows wine winners wme wolterskluwer woodside
work works world wow ws wtc wtf xbox xerox xfinity xihuan xin xxx xyz yachts yahoo yamaxun
yandex ye yodobashi yoga yokohama you youtube yt yun za zappos zara zero zip zm zone zuerich zw
vermögensberater vermögensberatung ελ ευ бг бел дети ею католик ком мкд мон москва онлайн орг
рус рф сайт срб укр қаз հայ ישראל קום ابوظبي اتصالات ارامكو الاردن البحرين الجزائر السعودية
السعوديه السعودیة السعودیۃ العليان المغرب اليمن امارات ايران ایران بارت بازار بيتك بھارت تونس
سودان سوريا سورية شبكة عراق عرب عمان فلسطين قطر كاثوليك كوم مصر مليسيا موريتانيا موقع همراه
پاكستان پاکستان ڀارت कॉम नेट भारत भारतम् भारोत संगठन বাংলা ভারত ভাৰত ਭਾਰਤ ભારત ଭାରତ இந்தியா
இலங்கை சிங்கப்பூர் భారత్ ಭಾರತ ഭാരതം ලංකා คอม ไทย ລາວ გე みんな アマゾン クラウド グーグル コム ストア セール ファッション
ポイント 世界 中信 中国 中國 中文网 亚马逊 企业 佛山 信息 健康 八卦 公司 公益 台湾 台灣 商城 商店 商标 嘉里 嘉里大酒店 在线 大拿 天主教 娱乐 家電 广东 微博 慈善
我爱你 手机 招聘 政务 政府 新加坡 新闻 时尚 書籍 机构 淡马锡 游戏 澳門 澳门 点看 移动 组织机构 网址 网店 网站 网络 联通 臺灣 谷歌 购物 通販 集团 電訊盈科 飞利浦
食品 餐厅 香格里拉 香港 닷넷 닷컴 삼성 한국
"""

# "tld: labels" means label.tld is a public suffix (a name is registered below it).
SECOND_LEVEL_SUFFIXES_TEXT = """
ac: com edu gov mil net org
ad: nom
ae: ac co gov mil net org sch
aero: res
af: com edu gov net org
ag: co com net nom org
ai: com net org
al: com edu gov mil net org
am: co com net org
ao: co
ar: com edu gob gov int mil net org
as: gov
at: ac co or
au: com edu gov id info net org
aw: com
az: biz com edu gov info int mil net org
ba: com edu gov mil net org
bb: biz co com edu gov info net org
bd: ac co com edu gov mil net org
be: ac
bf: gov
bh: com edu gov net org
bi: co com edu or org
bj: co com edu info net org
bm: com edu gov net org
bn: com edu gov net org
bo: com edu gob info int mil net org web
br: com edu gov ind mil net org
bs: com edu gov net org
bt: com edu gov net org
bw: co org
by: com gov mil
bz: com edu gov net org
cd: gov
ci: ac asso co com edu go gouv int net or org
ck: ac co com edu gov mil net org
cl: co gob gov mil
cm: co com gov net
cn: ac com edu gov mil net org
co: com edu firm gov info int mil net nom org web
cr: ac co go or
cu: com edu gov net org
cv: com edu int nome org
cw: com edu net org
cx: gov
cy: ac biz com gov ltd mil net org
dm: com edu gov net org
do: com edu gob gov mil net org web
dz: asso com edu gov net org
ec: com edu gob gov info k12 mil net org
ee: com edu gov org
eg: com edu gov mil net org
er: ac co com edu gov mil net org
es: com edu gob nom org
et: biz com edu gov info net org
fj: ac biz com gov info mil net org
fk: ac co com edu gov mil net org
fm: com edu net org
fr: asso com gouv nom
gd: edu gov
ge: com edu gov mil net org
gg: co net org
gh: com edu gov mil org
gi: com edu gov ltd mod org
gl: co com edu net org
gn: ac com edu gov net org
gp: asso com edu net org
gr: com edu gov net org
gt: com edu gob ind mil net org
gu: com edu gov info net org web
gy: co com edu gov net org
hk: com edu gov idv net org
hn: com edu gob mil net org
hr: com
ht: asso com edu firm gouv info net org
hu: co info org
id: ac biz co go mil net or sch web
ie: gov
il: ac co gov k12 net org
im: ac co com net org
in: ac biz co com edu firm gen gov ind info int me mil net nic org res
io: com
iq: com edu gov mil net org
ir: ac co gov id net org sch
is: com edu gov int net org
it: co edu go gov me or
je: co net org
jm: ac co com edu gov mil net org
jo: com edu gov mil net org sch
jp: ac co go ne or
ke: ac co go info me ne or
kg: com edu gov mil net org
kh: ac co com edu gov mil net org
ki: biz com edu gov info net org
km: asso com edu gouv gov mil nom org
kn: edu gov net org
kp: com edu gov org
kr: ac co go mil ne or
kw: com edu gov ind net org
ky: com edu net org
kz: com edu gov mil net org
la: com edu gov info int net org per
lb: com edu gov net org
lc: co com edu gov net org
lk: ac com edu gov int ltd net org sch web
lr: com edu gov net org
ls: ac biz co edu gov info net org
lt: gov
lv: com edu gov id mil net org
ly: com edu gov id net org plc sch
ma: ac co gov net org
mc: asso
me: ac co edu gov net org
mg: co com edu gov mil nom org
mk: com edu gov net org
ml: com edu gouv gov net org
mm: ac co com edu gov mil net org
mn: edu gov org
mo: com edu gov net org
mr: gov
ms: com edu gov net org
mt: com edu net org
mu: ac co com gov net or org
museum: school
mv: biz com edu gov info int mil net org
mw: ac biz co com edu gov int net org
mx: com edu gob net org
my: biz com edu gov mil net org
mz: ac co edu gov mil net org
na: co com in info or org school
nc: asso nom
nf: com firm info net per web
ng: com edu gov mil net org sch
ni: ac biz co com edu gob in info int mil net nom org web
no: mil
np: ac co com edu gov mil net org
nr: biz com edu gov info net org
nz: ac co gen govt mil net org school
om: co com edu gov net org
pa: ac com edu gob net nom org
pe: com edu gob mil net nom org
pf: com edu org
pg: ac co com edu gov mil net org
ph: com edu gov mil net org
pk: biz com edu gob gov info net org web
pl: biz com edu gov info mil net nom org
pn: co edu gov net org
pr: ac biz com edu gov info net org
ps: com edu gov net org
pt: com edu gov int net nome org
pw: co go ne or
py: com edu gov mil net org
qa: com edu gov mil net org sch
re: asso com nom
ro: com firm info nom org
rs: ac co edu gov in org
rw: ac co gov mil net org
sa: com edu gov net org sch
sb: com edu gov net org
sc: com edu gov net org
sd: com edu gov info net org
se: ac org
sg: com edu gov net org per
sh: com gov mil net org
sl: com edu gov net org
sn: com edu gouv org
so: com edu gov me net org
ss: biz com edu gov me net org sch
st: co com edu mil net org
sv: com edu gob org
sx: gov
sy: com edu gov mil net org
sz: ac co org
th: ac co go in net or
tj: ac biz co com edu go gov int mil net nic org web
tl: gov
tm: co com edu gov mil net nom org
tn: com gov ind info net org
to: com edu gov mil net org
tr: biz com edu gen gov info k12 mil net org web
tt: biz co com edu gov info int net org
tw: com edu gov idv mil net org
tz: ac co go info me mil ne or
ua: com edu gov in net org
ug: ac co com go ne or org
uk: ac co gov ltd me net nhs org plc police
us: co id in me ne or
uy: com edu mil net org
uz: co com net org
vc: com edu gov mil net org
ve: co com edu firm gob gov info int mil net nom org web
vi: co com k12 net org
vn: ac biz com edu gov info int net org
vu: com edu net org
ws: com edu gov net org
ye: com edu gov mil net org
za: ac co edu gov mil net nic nom org school web
zm: ac biz co com edu gov info mil net org sch
zw: ac co gov mil org
"""


def _words(text: str) -> list[str]:
    return text.split()


def _punycode(label: str) -> str:
    return "xn--" + label.encode("punycode").decode("ascii")


# Internationalised TLDs are listed in Unicode; they are also typed in their xn-- form.
TLDS: frozenset[str] = frozenset(
    form
    for tld in _words(TLDS_TEXT)
    for form in ((tld,) if tld.isascii() else (tld, _punycode(tld)))
)

SECOND_LEVEL_SUFFIXES: frozenset[str] = frozenset(
    f"{label}.{tld}"
    for line in SECOND_LEVEL_SUFFIXES_TEXT.strip().splitlines()
    for tld, labels in [line.split(":")]
    for label in _words(labels)
)

COMMON_ENDINGS: tuple[str, ...] = tuple(_words(COMMON_ENDINGS_TEXT))


def split_public_suffix(domain: str) -> tuple[str, str] | None:
    """Split ``domain`` into its name and public suffix (``ox.ac.uk``: ``("ox", "ac.uk")``), or
    None when it does not end in a real one."""
    labels = domain.split(".")
    for size in (2, 1):
        if len(labels) > size:
            suffix = ".".join(labels[-size:])
            if suffix in SECOND_LEVEL_SUFFIXES or (size == 1 and suffix in TLDS):
                return ".".join(labels[:-size]), suffix
    return None


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
