"""Generate examples/data/customers.csv: fictional customers of an online retailer, written for Matcha.

Every text is put together from hand-written sentence fragments (below), one set per latent theme
and language, so a segmentation can be checked against the known ``topic`` column. About 10% of the
customers mix in a sentence from a second theme and about 4% write something short, misspelt or
full of emoji, so that the segments are realistic rather than trivially separable. Numbers come
from per-theme distributions that overlap.

Standard library only and seeded: the same command always writes the same bytes.

    python examples/data/make_customers.py                # rewrites customers.csv next to this file
    python examples/data/make_customers.py --out /tmp/c.csv --n 300 --seed 7
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import random
import unicodedata
from pathlib import Path

SEED = 20261123
N_CUSTOMERS = 1200
COLUMNS = ["id", "lang", "feedback", "orders", "revenue", "days_since_last_order", "topic"]

# share of customers, then the lognormal medians (and spreads) of: orders, euros per order, days
# since the last order. Spreads are wide on purpose: the themes overlap on every number.
THEMES: dict[str, tuple[float, tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "delivery": (0.20, (2.0, 0.55), (70.0, 0.45), (9.0, 0.6)),
    "deals": (0.18, (16.0, 0.5), (24.0, 0.4), (14.0, 0.7)),
    "loyal": (0.15, (22.0, 0.5), (95.0, 0.4), (20.0, 0.7)),
    "service": (0.17, (4.0, 0.6), (65.0, 0.5), (45.0, 0.6)),
    "ethics": (0.13, (6.0, 0.6), (60.0, 0.45), (60.0, 0.7)),
    "sizing": (0.17, (7.0, 0.5), (50.0, 0.35), (25.0, 0.6)),
}

# Slots filled per text: {product} {garment} {size} {order} {days} {amount} {refund} {percent}.
# French products carry their article and sit where no agreement is needed ("le colis contenant {product}").
PRODUCTS = {
    "fr": ["une bouilloire", "un casque audio", "une lampe de bureau", "un robot pâtissier", "des draps en lin",
           "une poêle en fonte", "un sac à dos", "une cafetière italienne", "un plaid en laine",
           "une enceinte Bluetooth", "un service à thé", "un aspirateur sans fil", "une théière en verre",
           "un vase en céramique", "des verres à vin", "une couette", "un tapis de yoga", "une montre connectée",
           "un grille-pain", "une valise cabine"],
    "en": ["a kettle", "headphones", "a desk lamp", "a stand mixer", "linen bedsheets", "a cast-iron pan",
           "a backpack", "a coffee maker", "a wool throw", "a Bluetooth speaker", "a tea set", "a cordless vacuum",
           "a glass teapot", "a ceramic vase", "wine glasses", "a duvet", "a yoga mat", "a smartwatch", "a toaster",
           "a cabin suitcase"],
}
GARMENTS = {
    "fr": ["une robe", "un jean", "un manteau", "une chemise", "un pull", "une veste en jean", "un pantalon",
           "des baskets", "une jupe", "un short de sport", "des bottines", "un sweat à capuche"],
    "en": ["a dress", "jeans", "a coat", "a shirt", "a jumper", "a denim jacket", "trousers", "trainers", "a skirt",
           "sports shorts", "ankle boots", "a hoodie"],
}
SIZES = ["XS", "S", "M", "L", "XL", "36", "38", "40", "42", "44"]
GREETINGS = {"fr": ["Bonjour", "Bonsoir", "Bonjour à toute l'équipe", "Madame, Monsieur", "Salut"],
             "en": ["Hi", "Hello", "Hi there", "Dear team", "Good morning"]}
SIGN_OFFS = {"fr": ["Cordialement.", "Bien à vous.", "Merci.", "Bonne journée.", "Merci d'avance."],
             "en": ["Thanks.", "Kind regards.", "Regards.", "Thank you.", "Many thanks."]}

# Short, noisy messages as people really type them (no greeting, typos, emoji).
SHORT = {
    ("delivery", "fr"): ["colis abimé", "toujours pas recu ma comande", "livraison en retard 😡",
                         "ou est mon colis ???", "carton écrasé 📦💥", "livré chez le voisin..."],
    ("delivery", "en"): ["parcel damaged", "still not deliverd", "where is my order??", "box smashed 📦😡",
                         "late again", "never arrived!!"],
    ("deals", "fr"): ["code promo marche pas", "des soldes bientot ?", "trop cher 💸", "promo ??",
                      "vente flash top 🔥", "moins cher ailleur"],
    ("deals", "en"): ["promo code not workin", "any discount?", "too expensive 💸", "sale when??",
                      "found it cheaper elsewhere", "flash sale 🔥🔥"],
    ("loyal", "fr"): ["Top qualité 👍", "parfait comme toujours", "j'adore ❤️", "super produits merci", "10/10",
                      "toujours au top 😍"],
    ("loyal", "en"): ["love it ❤️", "great quality as allways", "perfect 👍", "best shop ever", "10/10 would buy again",
                      "amazing quality 😍"],
    ("service", "fr"): ["tjrs pas rembourse", "personne repond 😤", "remboursement ???", "sav nul",
                        "rappelez moi svp", "débité 2 fois !!"],
    ("service", "en"): ["still no refund", "nobody answers 😤", "refund??", "worst customer service",
                        "call me back pls", "charged twice!!"],
    ("ethics", "fr"): ["trop de plastique 🌍", "fabriqué où ?", "emballage non recyclable", "bio ou pas ?",
                       "♻️ svp", "moins d'emballage svp"],
    ("ethics", "en"): ["too much plastic 🌍", "where is it made?", "packaging not recylable", "is it organic?",
                       "♻️ please", "less packaging pls"],
    ("sizing", "fr"): ["trop petit", "taille trop grand 🤷", "echange taille svp", "guide des tailles faux",
                       "retour en cours", "pas la bonne taille 👖"],
    ("sizing", "en"): ["too small", "runs big 🤷", "exchange size pls", "size guide is wrong", "return pending",
                       "wrong size 👖"],
}
EMOJI = {"delivery": "📦😡⏳", "deals": "💸🔥🤑", "loyal": "❤️😍👍", "service": "😤🙄☎️", "ethics": "🌱♻️🌍",
         "sizing": "👗👖🤷"}

# One block per theme and language: [opening] sentences start a message, [body] sentences add details,
# [ending] sentences ask for something or conclude. One fragment per line.
FRAGMENTS: dict[tuple[str, str], str] = {}

FRAGMENTS["delivery", "fr"] = """
[opening]
Ma commande n° {order} n'est toujours pas arrivée.
J'attends mon colis depuis {days} jours.
Le colis contenant {product} est arrivé complètement écrasé.
Le suivi indique « livré » depuis hier, mais je n'ai rien reçu.
La livraison était prévue mardi, on est lundi et toujours rien.
J'ai reçu {product} dans un carton éventré.
Mon colis a fait trois allers-retours entre deux centres de tri.
La livraison express que j'ai payée est arrivée avec une semaine de retard.
Le livreur a laissé le paquet devant l'immeuble, sous la pluie.
Encore un retard de livraison, cette fois sur ma commande n° {order}.
Le colis est bloqué au dépôt depuis {days} jours.
J'ai commandé {product} et tout est arrivé en morceaux.
Je n'ai reçu qu'une partie de ma commande.
On m'a livré le colis d'un voisin à la place du mien.
Le suivi n'a pas bougé depuis {days} jours.
Le transporteur a noté « destinataire absent » alors que j'étais chez moi toute la journée.
Mon colis est arrivé ouvert et il manque {product}.
Le point relais où mon colis devait être déposé est fermé pour travaux.
C'est la deuxième fois que ma livraison arrive en retard.
Le carton contenant {product} était enfoncé sur tout un côté.
J'avais commandé pour un anniversaire, le colis est arrivé trois jours après.
Le livreur a déposé mon colis dans une boîte aux lettres qui n'est pas la mienne.
Ma commande est indiquée « en cours d'acheminement » depuis plus d'une semaine.
Le carton était trempé, tout comme {product} à l'intérieur.
Aucune nouvelle de mon colis depuis la confirmation d'expédition.
[body]
Le numéro de suivi renvoie une page d'erreur.
J'ai contacté le transporteur, qui me renvoie vers vous.
Personne n'a sonné, j'ai juste trouvé un avis de passage.
J'ai pris des photos du carton à la réception.
L'emballage était bien trop léger pour un objet aussi fragile.
Le délai annoncé sur le site était de 48 heures.
J'ai dû poser une demi-journée de congé pour attendre le livreur.
Le verre a traversé le papier bulle, on voit bien que le colis est tombé.
Le suivi affiche une adresse de livraison qui n'est pas la mienne.
J'ai vérifié avec le gardien : aucun colis à mon nom.
La date de livraison a été repoussée quatre fois.
Il y avait une trace de pneu sur le carton, sans exagérer.
Le point relais me dit qu'il n'a jamais reçu le colis.
Les coins du carton étaient arrachés et le scotch refait à la main.
Je comprends les aléas, mais là ça fait beaucoup.
C'était un cadeau, je me retrouve les mains vides.
Le produit lui-même a l'air correct, c'est l'emballage qui a souffert.
Le livreur m'a fait signer sans me laisser ouvrir le colis.
Le suivi indique une livraison à 14 h alors que j'étais à la maison.
J'ai reçu un SMS annonçant la livraison, puis plus rien.
L'appareil ne s'allume plus, sans doute à cause du choc.
Le colis a visiblement passé plusieurs jours dehors.
Sur la photo de livraison, ce n'est même pas ma porte.
Les frais de port étaient pourtant loin d'être gratuits.
Mon voisin a reçu sa commande passée le même jour, moi non.
[ending]
Pouvez-vous me dire où se trouve mon colis ?
Merci de me renvoyer un produit en bon état.
J'aimerais savoir quand je peux espérer être livré.
Je souhaite un nouvel envoi en urgence.
Merci de faire le nécessaire auprès du transporteur.
Si le colis n'arrive pas d'ici vendredi, j'annule la commande.
Je voudrais un remplacement, pas un avoir.
Franchement, je ne vous recommanderai pas si ça continue.
Dites-moi comment vous renvoyer le produit abîmé.
Merci de vérifier ce qui s'est passé avec ce livreur.
J'attends une solution rapide.
La prochaine fois, je commanderai ailleurs si les délais ne sont pas tenus.
Pouvez-vous ouvrir une enquête auprès du transporteur ?
Je veux bien patienter, mais j'aimerais une date précise.
Merci de me tenir informé.
Dois-je refuser le colis s'il arrive abîmé ?
Il serait temps de revoir votre emballage.
Je joins les photos du carton à ce message.
Est-ce que je peux le récupérer directement à l'entrepôt ?
Sans nouvelles de votre part, je déposerai une réclamation.
J'espère que le prochain envoi se passera mieux.
Merci d'avance pour votre retour rapide.
Bref, une expérience de livraison décevante.
Je n'en peux plus d'attendre.
Est-il possible de changer de mode de livraison ?
"""

FRAGMENTS["delivery", "en"] = """
[opening]
My order {order} still hasn't arrived.
I've been waiting {days} days for my parcel.
The box with {product} arrived completely crushed.
Tracking says "delivered" but there's nothing at my door.
Delivery was due on Tuesday and it's now the following Monday.
I received {product} in a box that had been ripped open.
My parcel has been bouncing between two depots for a week.
I paid for express shipping and it turned up a week late.
The driver left the package outside in the rain.
Another late delivery, this time on order {order}.
The parcel has been stuck at the depot for {days} days.
I ordered {product} and it arrived in pieces.
Only half of my order was delivered.
I got my neighbour's parcel instead of mine.
The tracking page hasn't updated in {days} days.
The courier marked it "nobody home" while I was in all day.
My parcel arrived open with {product} missing.
The pickup point my parcel was sent to is closed for refurbishment.
This is the second time my delivery has been late.
The box with {product} inside was badly dented.
I ordered a birthday present and it arrived three days after the party.
The courier put my parcel through the wrong letterbox.
My order has said "in transit" for more than a week.
The box was soaking wet, with {product} inside.
I've heard nothing about my parcel since the dispatch email.
[body]
The tracking number just gives an error page.
I called the courier and they told me to contact you.
Nobody rang the bell, I only found a "sorry we missed you" card.
I took photos of the box when it arrived.
The packaging was far too flimsy for something that fragile.
Your website promised delivery within 48 hours.
I took half a day off work to wait for the driver.
The glass had gone straight through the bubble wrap, so it was clearly dropped.
The tracking shows a delivery address that isn't mine.
I checked with the building concierge and there's no parcel in my name.
The delivery date has been pushed back four times.
There was literally a tyre mark on the box.
The pickup point says they never received it.
The corners of the box were torn and someone had re-taped it by hand.
I understand delays happen, but this is too much.
It was a gift, so now I have nothing to give.
The device won't switch on, probably because of the knock.
The driver made me sign before I could open the box.
Tracking says it was delivered at 2 pm, when I was at home.
I got a text saying it was out for delivery, then nothing.
It looks like the parcel was left outdoors for days.
The delivery photo isn't even of my front door.
And the shipping wasn't exactly free.
My neighbour got an order placed the same day, I didn't.
The estimated delivery window changes every time I check.
[ending]
Can you tell me where my parcel actually is?
Please send me a replacement in one piece.
I'd like to know when I can expect it.
I need it re-sent urgently.
Please chase the courier on your side.
If it isn't here by Friday I'm cancelling the order.
I want a replacement, not store credit.
Honestly, I won't recommend you if this keeps happening.
Let me know how to send the damaged item back.
Please look into what happened with this driver.
I'm expecting a quick fix.
Next time I'll order elsewhere if delivery times aren't met.
Could you open an investigation with the carrier?
I'm happy to wait, but I'd like an actual date.
Please keep me posted.
Should I refuse the parcel if it shows up damaged?
You really need to rethink your packaging.
Photos of the box are attached.
Can I collect it from the warehouse myself?
If I don't hear back I'll file a formal complaint.
Hoping the next shipment goes better.
Thanks in advance for a quick reply.
All in all, a disappointing delivery experience.
I'm tired of waiting.
Can I change the delivery method?
"""

FRAGMENTS["deals", "fr"] = """
[opening]
Mon code promo ne fonctionne pas au moment de payer.
J'ai vu {product} moins cher chez un concurrent.
Est-ce que les soldes reprennent bientôt ?
Je commande souvent chez vous, surtout pendant les ventes flash.
Le code de bienvenue de {percent} % n'a pas été appliqué.
J'ai acheté {product} et le prix a baissé deux jours après.
Je guette vos promotions toutes les semaines.
J'adore vos ventes privées, mais tout part trop vite.
La livraison gratuite est passée de 30 € à 49 € d'achat, dommage.
J'ai reçu la newsletter avec -{percent} %, mais le lien ne marche pas.
Pour le Black Friday, vos réductions étaient bien moins intéressantes que l'an dernier.
Je compare toujours les prix avant de commander, et vous n'êtes plus les moins chers.
Est-ce qu'il y a un code promo en ce moment ?
J'ai eu {product} en promo, super affaire.
Mes points de fidélité ont disparu de mon compte.
Le prix barré ne correspond pas au prix habituel.
Je profite des bons plans dès qu'ils sortent.
Le deuxième article à -50 % n'a pas été déduit.
J'attends les soldes pour acheter {product}.
Votre offre « 3 pour 2 » ne s'applique pas à mon panier.
Je suis client depuis longtemps et je fais surtout des petites commandes.
Le cashback promis sur ma dernière commande n'est jamais arrivé.
Votre concurrent propose la livraison gratuite sans minimum d'achat.
J'ai raté la vente flash d'hier soir, le site était saturé.
Les frais de port coûtent plus cher que l'article lui-même.
[body]
Le site affiche « code expiré » alors qu'il est valable jusqu'à dimanche.
Là-bas, c'est {amount} de moins, frais de port compris.
Je ne commande quasiment qu'en période de promo.
Un petit geste commercial serait le bienvenu.
Je passe commande plusieurs fois par mois, souvent pour de petits montants.
J'ai fait une capture d'écran du prix affiché.
Le panier affiche encore le prix plein.
Avec l'inflation, je fais attention à chaque euro.
J'ai partagé votre offre avec des amis, ils ont eu le même problème.
Les offres de parrainage étaient plus généreuses avant.
Je préfère attendre une remise que payer le prix fort.
Vos alertes prix sont pratiques, quand elles fonctionnent.
Le produit est bien, mais à ce prix-là j'hésite.
J'ai essayé sur l'appli et sur le site, même résultat.
D'habitude, je cumule le code promo avec mes points de fidélité.
Les ventes flash commencent à 7 h, je n'arrive jamais à en profiter.
Je regarde les prix tous les jours avant de me décider.
Le bon de réduction de {amount} n'apparaît plus dans mon espace client.
Pour un petit panier, les frais de livraison gâchent tout.
J'ai ajouté trois articles juste pour atteindre le seuil de livraison gratuite.
Une remise de {percent} % me ferait commander tout de suite.
Je suis abonnée à la newsletter uniquement pour les codes.
Le prix a augmenté pendant que l'article était dans mon panier.
Je n'achète presque jamais au prix normal, je l'avoue.
Les soldes d'hiver étaient vraiment top l'année dernière.
[ending]
Pouvez-vous appliquer la réduction manuellement ?
Est-ce que vous vous alignez sur les prix des concurrents ?
Merci de me rembourser la différence.
Prévenez-moi de la prochaine vente privée !
Un nouveau code serait apprécié.
Sinon, je commanderai chez le concurrent.
Je reste fidèle tant que les prix suivent.
Vivement les prochaines soldes.
Merci de me recréditer mes points.
Est-ce que le code est cumulable avec la livraison gratuite ?
Un geste commercial pour une cliente régulière ?
Je surveille vos prochaines promos.
Dites-moi si l'offre sera reconduite.
Merci de corriger le prix affiché.
Je passerai commande dès que le prix baissera.
Pouvez-vous m'envoyer un bon de réduction ?
Ce serait sympa de récompenser les clients fidèles.
J'attends votre réponse avant de valider mon panier.
Continuez les ventes flash, c'est ce que je préfère chez vous.
Merci de vérifier pourquoi le code est refusé.
Je compte sur vous pour le prochain Black Friday.
Un petit code pour la route ?
Sinon tant pis, j'attendrai les soldes.
Merci pour les bons plans, continuez comme ça.
Le rapport qualité-prix doit rester votre point fort.
"""

FRAGMENTS["deals", "en"] = """
[opening]
My discount code doesn't work at checkout.
I've seen {product} cheaper at another shop.
When is the next sale starting?
I order from you a lot, mostly during flash sales.
The {percent}% welcome code wasn't applied.
I bought {product} and the price dropped two days later.
I check your deals every single week.
I love your members-only sales, but everything sells out too fast.
Free delivery used to start at €30 and now it's €49, shame.
Your newsletter promised {percent}% off but the link is broken.
Your Black Friday discounts were much weaker than last year.
I always compare prices before ordering and you're no longer the cheapest.
Is there a promo code running at the moment?
I got {product} on offer, great bargain.
My loyalty points have vanished from my account.
The "was" price doesn't match the usual price.
I jump on your deals as soon as they go live.
The second item at half price wasn't taken off.
I'm waiting for the sale to buy {product}.
Your "3 for 2" offer won't apply to my basket.
I've been a customer for years and I mostly place small orders.
The cashback promised on my last order never showed up.
A competitor offers free delivery with no minimum spend.
I missed last night's flash sale because the site crashed.
The shipping costs more than the item itself.
[body]
It says "code expired" even though it's valid until Sunday.
It's {amount} less over there, delivery included.
I hardly ever order outside of sales.
A small goodwill gesture would be welcome.
I order several times a month, usually small amounts.
I took a screenshot of the advertised price.
The basket still shows the full price.
With prices going up everywhere, I watch every euro.
I shared the offer with friends and they had the same problem.
The refer-a-friend deals used to be more generous.
I'd rather wait for a discount than pay full price.
Your price alerts are handy when they work.
The product is fine, but at that price I'm hesitating.
I tried on the app and on the website, same result.
Normally I stack the promo code with my loyalty points.
Flash sales start at 7 am, I can never catch them.
I check prices every day before deciding.
The {amount} voucher no longer shows in my account.
On a small basket, the delivery fee ruins the deal.
I added three items just to reach the free delivery threshold.
A {percent}% discount would make me order right away.
I'm only subscribed to the newsletter for the codes.
The price went up while it was sitting in my basket.
I'll admit I almost never buy at full price.
Last year's winter sale was brilliant.
[ending]
Can you apply the discount manually?
Do you price match?
Please refund me the difference.
Let me know about the next private sale!
A new code would be appreciated.
Otherwise I'll order from the competition.
I'll stay loyal as long as your prices do.
Can't wait for the next sale.
Please put my points back.
Can the code be combined with free delivery?
Any goodwill gesture for a regular customer?
I'll keep an eye on your next promotions.
Tell me if the offer will come back.
Please fix the displayed price.
I'll order as soon as the price drops.
Could you send me a discount voucher?
It would be nice to reward loyal customers.
I'm waiting for your answer before I check out.
Keep the flash sales coming, they're my favourite thing about you.
Please check why the code is rejected.
Counting on you for next Black Friday.
Any chance of a little code?
Otherwise never mind, I'll wait for the sales.
Thanks for the bargains, keep them coming.
Value for money should stay your strong point.
"""

FRAGMENTS["loyal", "fr"] = """
[opening]
Je suis cliente depuis six ans et je n'ai jamais été déçue.
Encore une commande parfaite, merci !
J'ai commandé {product} et la qualité est remarquable.
Vos produits sont d'une qualité qu'on ne trouve plus ailleurs.
Troisième achat chez vous ce mois-ci, toujours aussi satisfait.
Je voulais simplement vous remercier pour la qualité de vos articles.
Je recommande votre boutique à toute ma famille.
J'ai reçu {product} : la finition est irréprochable.
Ça fait des années que j'achète ici et je n'ai jamais eu le moindre souci.
Depuis trois ans, j'utilise tous les jours {product} de chez vous.
Vos articles durent, et ça se voit.
Commande reçue, emballage soigné, produit superbe.
Je reviens toujours chez vous pour la qualité.
Quel plaisir de recevoir {product} d'une telle qualité.
Je suis fidèle à votre marque depuis le début.
J'ai offert {product} à ma sœur, elle est ravie.
Rien à redire, comme d'habitude.
Vos produits valent largement leur prix.
Je viens de rééquiper presque toute ma cuisine chez vous.
Client fidèle depuis 2017, je tenais à vous écrire.
La qualité est constante d'une commande à l'autre, c'est rare.
C'est ma boutique en ligne préférée, tout simplement.
J'ai comparé avec d'autres marques : il n'y a pas photo.
J'ai craqué pour {product}, un vrai coup de cœur.
Je commande chez vous les yeux fermés.
[body]
Les matériaux sont solides et les coutures impeccables.
On sent que chaque détail a été pensé.
Mon ancien modèle a tenu dix ans, le nouveau a l'air encore mieux.
Je préfère payer un peu plus pour quelque chose qui dure.
Toute la maison est équipée chez vous maintenant.
Le service client a toujours été aimable quand j'en ai eu besoin.
Même après de nombreux lavages, c'est comme neuf.
J'ai déjà repris le même article en trois couleurs.
Mes amis me demandent tout le temps où je l'ai acheté.
Les photos du site sont fidèles à la réalité.
Vous êtes devenus mon réflexe pour tous les cadeaux.
La notice est claire et le montage a pris cinq minutes.
Le rapport qualité-prix est excellent sur le long terme.
J'ai des articles de chez vous depuis des années, et rien ne s'use.
On voit la différence avec les produits premier prix.
J'ai même été touché par la petite carte manuscrite dans le colis.
Je fais partie du programme de fidélité depuis le début.
Le tissu est épais, agréable, rien à voir avec ce qu'on trouve ailleurs.
Chaque nouvelle collection est meilleure que la précédente.
J'ai eu besoin d'une pièce de rechange, reçue en deux jours.
La qualité de fabrication est vraiment au rendez-vous.
Je n'hésite plus à commander les nouveautés dès leur sortie.
Tout est arrivé en parfait état, bien protégé.
C'est solide, beau et agréable à utiliser.
Je conseille votre site à mes collègues.
[ending]
Continuez comme ça !
Merci à toute l'équipe.
Vivement la prochaine collection.
Je reviendrai, c'est certain.
Bravo pour votre sérieux.
Vous avez gagné une cliente pour la vie.
Surtout, ne changez rien.
Cinq étoiles, sans hésiter.
J'ai hâte de découvrir vos nouveautés.
Merci pour ce travail de qualité.
Je vous recommande autour de moi, évidemment.
Encore merci et à bientôt.
Un grand bravo à vos équipes.
Je vous fais confiance depuis des années, et ce n'est pas près de changer.
C'est un plaisir de commander chez vous.
Pourriez-vous proposer ce modèle dans d'autres coloris ?
Gardez ce niveau de qualité, c'est ce qui fait la différence.
J'ai déjà prévu ma prochaine commande.
Merci de fabriquer encore des produits qui durent.
Je laisserai un avis positif sur le site.
Prévoyez-vous une gamme pour les enfants ?
Bonne continuation !
Au plaisir de vous lire dans la prochaine newsletter.
Fidèle au poste, comme toujours.
Quelle différence avec les grandes plateformes !
"""

FRAGMENTS["loyal", "en"] = """
[opening]
I've been a customer for six years and I've never been disappointed.
Another perfect order, thank you!
I ordered {product} and the quality is outstanding.
Your products are a quality you just don't find elsewhere any more.
Third order this month and still delighted.
I just wanted to say thank you for the quality of your products.
I recommend your shop to my whole family.
The finish on {product} is flawless.
I've been shopping here for years and never had a single problem.
Three years on, I still use {product} from you every day.
Your things last, and it shows.
Order received, lovely packaging, beautiful product.
I always come back to you for the quality.
What a treat to receive {product} so well made.
I've been loyal to your brand from the start.
I gave {product} to my sister as a present and she's thrilled.
Nothing to fault, as usual.
Your products are well worth the price.
I've just replaced almost my entire kitchen with your range.
A loyal customer since 2017, I wanted to write to you.
The quality is consistent from one order to the next, which is rare.
You're simply my favourite online shop.
I compared with other brands and there's no contest.
I treated myself to {product} and I'm over the moon.
I order from you with my eyes closed.
[body]
The materials are sturdy and the stitching is perfect.
You can tell every detail has been thought through.
My old one lasted ten years and the new one looks even better.
I'd rather pay a bit more for something that lasts.
The whole house is kitted out from your shop now.
Customer service has always been lovely whenever I needed them.
Even after lots of washes it looks brand new.
I've already bought the same thing in three colours.
Friends keep asking me where I got it.
The photos on the site are true to life.
You've become my go-to for presents.
The instructions are clear and it took five minutes to assemble.
Value for money is excellent in the long run.
I've had things from you for years and nothing wears out.
You can really see the difference from budget brands.
I was even touched by the handwritten note in the parcel.
I've been in the loyalty programme since day one.
The fabric is thick and soft, nothing like what you get elsewhere.
Every new collection is better than the last.
I needed a spare part and it arrived in two days.
The build quality is really there.
I don't hesitate to order new releases the day they come out.
Everything arrived in perfect condition, well protected.
It's solid, beautiful and a pleasure to use.
I recommend your site to my colleagues.
[ending]
Keep it up!
Thanks to the whole team.
Can't wait for the next collection.
I'll definitely be back.
Well done for being so reliable.
You've won a customer for life.
Please don't change a thing.
Five stars, no hesitation.
Looking forward to your new products.
Thank you for such quality work.
I recommend you to everyone, of course.
Thanks again and see you soon.
Huge congratulations to the team.
I've trusted you for years and that won't change.
It's a pleasure to order from you.
Could you offer this model in other colours?
Keep this level of quality, it's what sets you apart.
I've already planned my next order.
Thank you for still making things that last.
I'll leave a good review on the site.
Are you planning a range for children?
All the best!
Always happy to read your newsletter.
Loyal as ever.
What a difference from the big marketplaces!
"""

FRAGMENTS["service", "fr"] = """
[opening]
J'attends mon remboursement depuis {days} jours.
Votre service client ne répond ni aux mails ni au téléphone.
J'ai renvoyé {product} il y a trois semaines et toujours aucun remboursement.
Mon dossier n° {order} est ouvert depuis un mois, sans réponse.
C'est la quatrième fois que je vous écris pour le même problème.
Le chat en ligne me coupe à chaque fois qu'on arrive au problème.
On m'a promis un rappel qui n'est jamais venu.
J'ai été débitée deux fois pour la même commande.
Je demande l'annulation de ma commande depuis une semaine.
Votre conseiller m'a raccroché au nez.
Le remboursement annoncé « sous 5 jours » n'est toujours pas arrivé.
Je n'arrive pas à joindre un être humain chez vous.
Votre réponse automatique ne règle absolument rien.
J'ai reçu un avoir alors que j'avais demandé un remboursement.
Ma réclamation a été clôturée sans qu'on me réponde.
Impossible d'obtenir une facture pour ma commande n° {order}.
Vous avez encaissé {refund} pour une commande annulée.
Chaque conseiller me donne une version différente.
D'après le suivi, mon retour a bien été reçu, mais rien ne bouge.
Je suis extrêmement déçu par votre service après-vente.
On me redemande des justificatifs que j'ai déjà envoyés trois fois.
J'ai acheté {product} sous garantie, et on me refuse maintenant la prise en charge.
Le formulaire de contact renvoie une erreur depuis plusieurs jours.
J'ai passé quarante minutes en attente pour rien.
Vous me devez toujours {refund}.
[body]
En plus, le numéro est surtaxé, c'est vraiment abusé.
J'ai toutes les preuves de dépôt du colis retour.
À chaque appel, je dois tout réexpliquer depuis le début.
On me répond par des messages copiés-collés.
Le conseiller m'avait assuré que c'était réglé.
Ma banque confirme qu'aucun virement n'a été reçu.
Je n'ai jamais eu de réponse à mon mail du mois dernier.
J'ai ouvert trois tickets, tous fermés automatiquement.
Je suis pourtant client depuis longtemps.
Le délai légal de remboursement est largement dépassé.
Personne ne semble savoir qui s'occupe de mon dossier.
La conversation avec le chat a disparu de mon compte.
Je vous ai envoyé les photos et le bon de retour.
On me dit d'attendre, encore et encore.
Les conditions générales parlent de 14 jours, pas de deux mois.
Ce n'est pas à moi de vous relancer sans arrêt.
J'ai dû avancer l'argent pour racheter le même produit ailleurs.
Le mail de confirmation d'annulation, lui, je l'ai bien reçu.
Votre service client sur les réseaux sociaux ne répond pas non plus.
J'ai été transférée quatre fois vers des services différents.
On m'a répondu en anglais alors que j'écrivais en français.
Le bon de retour que vous m'avez envoyé était vide.
Le conseiller ne connaissait même pas votre politique de retour.
Je ne demande rien d'autre que ce qui m'est dû.
Ça dure maintenant depuis plus d'un mois.
[ending]
Je veux être remboursé, point.
Sans réponse sous huit jours, je saisirai le médiateur.
Merci de traiter enfin ma demande.
J'attends une réponse écrite.
Pouvez-vous me dire précisément où en est mon remboursement ?
Je vais contester le paiement auprès de ma banque.
Merci de me rappeler au numéro indiqué sur mon compte.
J'aimerais parler à un responsable.
Je laisserai un avis très négatif si rien ne bouge.
Réglez ce dossier, s'il vous plaît.
Je vous demande le remboursement intégral, frais de port compris.
Votre service client est à revoir entièrement.
C'est inadmissible.
Je ne commanderai plus chez vous.
Merci de me confirmer la date du virement.
Je vous laisse 48 heures pour me répondre.
Je me réserve le droit de porter plainte.
Un geste commercial serait la moindre des choses après tout ce temps.
Merci de ne pas me renvoyer encore un message automatique.
Il est temps que quelqu'un prenne ce dossier en main.
Je souhaite la fermeture de mon compte une fois remboursée.
Merci d'annuler la commande et de me rembourser.
Je commence à perdre patience.
Une vraie réponse, pour une fois, ce serait bien.
Dans l'attente de votre réponse.
"""

FRAGMENTS["service", "en"] = """
[opening]
I've been waiting {days} days for my refund.
Your customer service doesn't answer emails or the phone.
I sent {product} back three weeks ago and still no refund.
My case {order} has been open for a month with no reply.
This is the fourth time I'm writing about the same problem.
The live chat cuts me off every time we get to the issue.
I was promised a call back that never came.
I was charged twice for the same order.
I've been asking you to cancel my order for a week.
Your agent hung up on me.
The refund you said would take "5 working days" still hasn't arrived.
I can't get hold of a human being at your company.
Your automatic reply solves absolutely nothing.
I got store credit when I asked for a refund.
My complaint was closed without anyone answering it.
I can't get an invoice for order {order}.
You took {refund} for an order that was cancelled.
Every agent tells me something different.
Tracking shows my return was received, but nothing has happened since.
I'm extremely disappointed with your after-sales service.
You keep asking for documents I've already sent three times.
The warranty on {product} was supposed to cover this, now you say it doesn't.
The contact form has been throwing an error for days.
I spent forty minutes on hold for nothing.
You still owe me {refund}.
[body]
And a premium-rate phone line on top of that is a joke.
I have proof of postage for the return.
Every time I call I have to explain everything from scratch.
The replies I get are copy-and-paste.
The agent told me it was sorted.
My bank confirms no refund has come in.
I never heard back about the email I sent last month.
I've opened three tickets, all closed automatically.
And I've been a customer for a long time.
The legal refund deadline passed long ago.
Nobody seems to know who's handling my case.
The chat conversation has disappeared from my account.
I've sent you the photos and the returns slip.
I'm told to wait, again and again.
Your terms say 14 days, not two months.
It shouldn't be up to me to keep chasing you.
I had to buy the same thing elsewhere out of my own pocket.
Funnily enough, the cancellation confirmation email arrived just fine.
Your social media team doesn't answer either.
I've been transferred to four different departments.
I was answered in French although I wrote in English.
The returns label you sent me was blank.
The agent didn't even know your own returns policy.
I'm not asking for anything more than what I'm owed.
This has been going on for over a month now.
[ending]
I want my money back, full stop.
If I don't hear back within a week I'll go to the ombudsman.
Please finally deal with my request.
I expect a written reply.
Can you tell me exactly where my refund is?
I'm going to ask my bank for a chargeback.
Please call me back on the number in my account.
I'd like to speak to a manager.
I'll leave a very negative review if nothing happens.
Please sort this out.
I'm asking for a full refund, shipping included.
Your customer service needs a complete overhaul.
This is unacceptable.
I won't be ordering from you again.
Please confirm the date of the transfer.
You have 48 hours to reply.
I reserve the right to take legal action.
Some compensation would be the least you could do after all this time.
Please don't send me another automated message.
It's time someone actually took ownership of this case.
I'd like my account closed once I'm refunded.
Please cancel the order and refund me.
I'm running out of patience.
A real answer, for once, would be nice.
Awaiting your reply.
"""

FRAGMENTS["ethics", "fr"] = """
[opening]
Je voudrais savoir d'où vient le coton de vos vêtements.
Pourquoi autant de plastique autour de {product} ?
Est-ce que vos produits sont fabriqués en Europe ?
J'essaie de consommer de façon plus responsable.
Le colis reçu contenait trois cartons pour un seul petit article.
Vos fournisseurs ont-ils un label ou une certification ?
J'aimerais connaître les conditions de travail dans vos usines.
Je cherche des produits durables et réparables.
Proposez-vous des emballages recyclables ou consignés ?
Votre gamme « éco » est-elle vraiment plus écologique ?
Je suis attentive à l'impact carbone de mes achats.
Est-ce que vous proposez une livraison groupée pour limiter les trajets ?
J'ai vu un reportage sur la fast fashion et je me pose des questions.
Vendez-vous des produits de seconde main ou reconditionnés ?
Quel est le bilan carbone de la livraison express ?
J'ai commandé {product} : les matériaux sont-ils recyclés ?
Je préfère acheter moins, mais mieux.
Votre rapport RSE est introuvable sur le site.
Pourquoi ne pas indiquer l'origine de chaque produit sur sa fiche ?
J'ai reçu un sac en plastique à l'intérieur d'un autre sac en plastique.
Y a-t-il des substances toxiques dans {product} ?
Est-ce que vous reprenez les anciens appareils pour les recycler ?
Vos produits en coton bio sont-ils certifiés ?
Existe-t-il un indice de réparabilité pour {product} ?
Je privilégie les marques transparentes sur leur production.
[body]
Les informations sur le site restent très vagues.
Tous ces suremballages sont vraiment inutiles.
Je suis prête à payer un peu plus pour du local.
Un label indépendant me rassurerait davantage.
Je fais attention à la provenance de tout ce que j'achète.
Mes enfants me posent des questions sur le recyclage, et je n'ai pas su leur répondre.
Du papier kraft suffirait largement.
D'autres enseignes affichent clairement leurs fournisseurs.
Je n'ai trouvé aucune mention des conditions de fabrication.
Les pièces détachées devraient rester disponibles plus longtemps.
Le polystyrène, franchement, on n'en veut plus.
J'aimerais choisir une livraison plus lente, mais moins polluante.
J'évite désormais les produits fabriqués à l'autre bout du monde.
Un service de réparation serait un vrai plus.
Je trie tout, mais vos emballages ne rentrent dans aucune poubelle.
Le greenwashing, on le repère vite.
Pouvoir rapporter les emballages en point relais serait idéal.
Je lis toujours les étiquettes avant d'acheter.
Votre charte environnementale mériterait d'être plus concrète.
J'ai arrêté d'acheter chez certaines marques pour ces raisons.
Une fiche produit complète, avec l'origine des matières, m'aiderait à choisir.
Le bambou, c'est bien, encore faut-il savoir d'où il vient.
J'accepterais d'attendre plus longtemps pour une livraison regroupée.
Le made in France a un coût, je le comprends.
Je ne veux pas contribuer à l'exploitation de qui que ce soit.
[ending]
Merci de m'éclairer sur ces points.
J'attends une réponse transparente.
Je continuerai à commander si vous faites des efforts.
Pouvez-vous me transmettre ces informations ?
Ce serait un vrai argument pour moi.
Réduisez les emballages, s'il vous plaît.
Je serais ravie de voir une gamme plus responsable.
Merci de prendre ces questions au sérieux.
La planète vous dira merci.
Je compte sur vous pour progresser.
J'ai hâte de voir des engagements concrets.
Pensez aux générations futures.
Une réponse précise m'aiderait à me décider.
Je reste attentive à vos prochaines annonces.
Dites-moi s'il existe une option de livraison plus écologique.
Je partagerai votre réponse avec mon association.
Merci de publier l'origine de vos produits.
Est-ce prévu pour bientôt ?
Je veux pouvoir acheter chez vous sans culpabiliser.
Merci d'avance pour votre transparence.
Sinon, je me tournerai vers des marques plus engagées.
Un petit effort sur le plastique, ce serait déjà ça.
Bon courage dans cette démarche.
Une cliente engagée, mais fidèle.
À vous de jouer !
"""

FRAGMENTS["ethics", "en"] = """
[opening]
I'd like to know where the cotton in your clothes comes from.
Why so much plastic around {product}?
Are your products made in Europe?
I'm trying to shop more responsibly.
My parcel had three boxes inside for one small item.
Do your suppliers have any label or certification?
I'd like to know about working conditions in your factories.
I'm looking for products that last and can be repaired.
Do you offer recyclable or returnable packaging?
Is your "eco" range actually any greener?
I care about the carbon footprint of what I buy.
Do you offer grouped deliveries to cut down on trips?
I watched a documentary on fast fashion and now I have questions.
Do you sell second-hand or refurbished products?
What is the carbon cost of express delivery?
I ordered {product}: are the materials recycled?
I'd rather buy less but better.
I can't find your sustainability report anywhere on the site.
Why not show where each product comes from on its page?
I got a plastic bag inside another plastic bag.
Are there any harmful chemicals in {product}?
Do you take old appliances back for recycling?
Are your organic cotton products certified?
Is there a repairability score for {product}?
I favour brands that are open about how things are made.
[body]
The information on your website is very vague.
All that extra packaging really isn't needed.
I'm happy to pay a bit more for something made locally.
An independent label would reassure me more.
I pay attention to where everything I buy comes from.
My kids ask me about recycling and I couldn't answer them.
Plain brown paper would be plenty.
Other retailers list their suppliers clearly.
I couldn't find a word about manufacturing conditions.
Spare parts should be available for longer.
Polystyrene, honestly, nobody wants that any more.
I'd choose a slower delivery if it polluted less.
I now avoid products shipped from the other side of the world.
A repair service would be a real plus.
I recycle everything, but your packaging doesn't fit in any bin.
Greenwashing is easy to spot.
Being able to drop packaging off at a pickup point would be ideal.
I always read the labels before I buy.
Your environmental charter could be a lot more concrete.
I've stopped buying from some brands for these reasons.
A full product page, with where the materials come from, would help me choose.
Bamboo is great, as long as you know where it comes from.
I'd happily wait longer for a combined delivery.
I understand that making things locally costs more.
I don't want to contribute to anyone being exploited.
[ending]
Thanks for shedding some light on this.
I'm hoping for a transparent answer.
I'll keep ordering if you make an effort.
Could you send me this information?
It would be a real selling point for me.
Please cut down on packaging.
I'd love to see a more responsible range.
Please take these questions seriously.
The planet will thank you.
I'm counting on you to improve.
I look forward to seeing real commitments.
Think of future generations.
A clear answer would help me decide.
I'll be watching your next announcements.
Let me know if there's a greener delivery option.
I'll share your answer with my local group.
Please publish where your products come from.
Is this planned any time soon?
I want to be able to shop with you without feeling guilty.
Thanks in advance for being transparent.
Otherwise I'll switch to brands that do more.
Even a small effort on plastic would be a start.
Good luck with it.
A committed but loyal customer.
Over to you!
"""

FRAGMENTS["sizing", "fr"] = """
[opening]
J'ai commandé {garment} en taille {size} et c'est beaucoup trop petit.
Le guide des tailles ne correspond pas du tout à la réalité.
Je voudrais échanger {garment} contre la taille au-dessus.
Je fais habituellement du {size}, mais là, impossible de le fermer.
La coupe taille très grand, je flotte dedans.
Troisième retour ce mois-ci à cause des tailles.
Les manches sont beaucoup trop courtes.
J'ai reçu {garment} et la longueur ne va pas du tout.
Comment faire un échange de taille sans repayer les frais de port ?
Même taille que d'habitude, mais rien à voir avec ma commande précédente.
Le pantalon est trop long d'au moins dix centimètres.
Les chaussures taillent petit, il faudrait le préciser.
Mon retour n'a pas encore été pris en compte.
Je commande toujours deux tailles et j'en renvoie une.
J'ai pris {garment} en {size} d'après votre guide, et c'est trop serré.
La taille indiquée sur l'étiquette n'est pas celle que j'ai commandée.
Le mannequin sur la photo porte visiblement une autre coupe.
La robe est magnifique, mais taillée pour quelqu'un qui mesure 1,80 m.
Entre le {size} et la taille au-dessus, il y a un monde.
L'étiquette de retour n'était pas dans le colis.
Le tissu a rétréci dès le premier lavage.
Je dois renvoyer {garment} : ça ne me va pas du tout.
Les tailles changent d'une collection à l'autre, c'est pénible.
Le jean est parfait à la taille, mais trop serré aux cuisses.
Votre essayage virtuel m'a conseillé du {size}, c'était une erreur.
[body]
J'avais pourtant bien pris mes mesures avant de commander.
Le tour de poitrine indiqué ne correspond pas.
Le point relais a bien scanné le colis retour.
Sur la photo, la longueur a l'air différente.
Les avis des autres clients disent tous la même chose.
Entre deux tailles, je ne sais jamais laquelle prendre.
La coupe est ajustée, il faudrait l'indiquer sur la fiche produit.
Le retour est gratuit, mais c'est quand même du temps perdu.
J'ai dû imprimer l'étiquette moi-même, alors que je n'ai pas d'imprimante.
La taille au-dessus est en rupture de stock, évidemment.
La matière ne s'étire pas du tout.
Je mesure 1,65 m pour 60 kg, si ça peut aider.
J'aime beaucoup le style, c'est juste la taille qui pose problème.
Le modèle homme et le modèle femme n'ont pas le même guide.
Le remboursement de mon retour précédent n'est toujours pas arrivé.
Une mention « taille petit » m'aurait évité ce retour.
La ceinture baille alors que c'est serré aux hanches.
Les épaules tombent beaucoup trop bas.
J'ai comparé avec un vêtement de la même marque qui me va bien.
Un échange prend plus de temps qu'une nouvelle commande.
Votre guide mélange tailles européennes et américaines.
Les chaussures sont confortables, mais trop grandes d'une pointure.
J'ai renvoyé le colis dans son emballage d'origine.
Le tableau des mesures n'indique pas la longueur de jambe.
Je ne peux pas essayer en magasin, alors je me fie à vos indications.
[ending]
Pouvez-vous m'envoyer la taille au-dessus ?
Merci de m'indiquer la marche à suivre pour l'échange.
Je préfère un remboursement plutôt qu'un échange.
Pourriez-vous revoir votre guide des tailles ?
Merci de me confirmer la réception de mon retour.
La taille en dessous sera-t-elle bientôt disponible ?
Je garde le modèle si vous avez la bonne taille.
Merci de préciser la coupe sur le site.
Quelle taille me conseillez-vous ?
Dites-moi si le retour est bien gratuit.
Sinon, je renvoie tout.
J'aimerais recevoir une étiquette de retour par mail.
Merci de me rembourser les frais de retour.
Je recommanderai quand les tailles seront fiables.
Pouvez-vous vérifier les mesures de ce modèle ?
Un conseil de taille personnalisé serait top.
Merci de m'aider à trouver la bonne taille.
Je tente l'échange, on verra bien.
L'échange peut-il se faire en point relais ?
Ajoutez des mesures réelles sur les fiches, s'il vous plaît.
Merci d'avance pour votre aide.
Je ne commanderai plus de vêtements sans pouvoir les essayer.
C'est dommage, la qualité est pourtant là.
J'attends le remboursement de mon retour.
Peut-on faire un échange direct sans attendre le remboursement ?
"""

FRAGMENTS["sizing", "en"] = """
[opening]
I ordered {garment} in size {size} and it's far too small.
Your size guide doesn't match reality at all.
I'd like to swap {garment} for the next size up.
I'm normally a size {size}, but this time I can't even do it up.
It comes up really big, I'm swimming in it.
Third return this month because of sizing.
The sleeves are far too short.
I received {garment} and the length is all wrong.
How do I exchange for a different size without paying shipping again?
Same size as always, but nothing like my previous order.
The trousers are at least ten centimetres too long.
The shoes run small, you should say so.
My return still hasn't been processed.
I always order two sizes and send one back.
I went for {garment} in {size} following your guide and it's too tight.
The size on the label isn't the one I ordered.
The model in the photo is clearly wearing a different fit.
The dress is gorgeous but cut for someone 1.80 m tall.
There's a world of difference between {size} and the next size up.
There was no returns label in the parcel.
The fabric shrank after the first wash.
I need to send {garment} back because of the fit.
Sizes change from one collection to the next, it's a pain.
The jeans fit at the waist but are too tight on the thighs.
Your virtual fitting tool told me to get size {size}, which was a mistake.
[body]
I measured myself carefully before ordering.
The chest measurement given is wrong.
The pickup point scanned the return parcel.
In the photo the length looks different.
The other customer reviews all say the same thing.
When I'm between two sizes I never know which to pick.
It's a slim fit, which should be on the product page.
Returns are free, but it's still wasted time.
I had to print the label myself and I don't have a printer.
The next size up is out of stock, of course.
The fabric has no stretch at all.
I'm 1.65 m and about 60 kg, if that helps.
I really like the style, it's just the size that's the problem.
The men's and women's versions don't use the same guide.
The refund for my last return still hasn't come through.
A note saying "runs small" would have saved me this return.
The waist gapes while the hips are too tight.
The shoulders sit way too low.
I compared it with an item from the same brand that fits me well.
An exchange takes longer than placing a new order.
Your guide mixes up European and US sizes.
The shoes are comfortable but a full size too big.
I sent it back in the original packaging.
The measurements table doesn't give the inside leg.
I can't try things on in a shop, so I rely on your guidance.
[ending]
Could you send me the next size up?
Please tell me how the exchange works.
I'd rather have a refund than an exchange.
Could you review your size guide?
Please confirm you've received my return.
Will the smaller size be back in stock soon?
I'll keep the style if you have the right size.
Please describe the fit on the website.
Which size would you recommend for me?
Let me know whether the return really is free.
Otherwise I'm sending everything back.
I'd like a returns label by email.
Please refund the return postage.
I'll order again once the sizing is reliable.
Could you check the measurements of this item?
Personal size advice would be great.
Please help me find the right size.
I'll try the exchange and see.
Can the exchange be done at a pickup point?
Please add real measurements to the product pages.
Thanks in advance for your help.
I won't order clothes again without being able to try them on.
Shame, because the quality is there.
I'm waiting for the refund on my return.
Can you do a direct swap without waiting for the refund?
"""


def parse_block(block: str) -> dict[str, list[str]]:
    """``[part]`` headers followed by one fragment per line -> {part: fragments}."""
    parts: dict[str, list[str]] = {}
    current: list[str] = []
    for line in block.strip().splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = parts.setdefault(line[1:-1], [])
        elif line.strip():
            current.append(line.strip())
    return parts


PARTS = {key: parse_block(block) for key, block in FRAGMENTS.items()}


def money(value: float, lang: str) -> str:
    text = f"{value:.0f}" if value.is_integer() else f"{value:.2f}"
    return f"{text.replace('.', ',')} €" if lang == "fr" else f"€{text}"


def slots(rng: random.Random, lang: str) -> dict[str, str]:
    return {
        "product": rng.choice(PRODUCTS[lang]),
        "garment": rng.choice(GARMENTS[lang]),
        "size": rng.choice(SIZES),
        "order": str(rng.randint(100_000, 999_999)),
        "days": str(rng.randint(4, 21)),
        "amount": money(rng.choice([5.0, 8.0, 10.0, 12.5, 15.0, 20.0, 25.0, 30.0]), lang),
        "refund": money(rng.randint(19, 240) + rng.choice([0.0, 0.9, 0.99]), lang),
        "percent": str(rng.choice([10, 15, 20, 25, 30, 40, 50])),
    }


def lower_first(text: str) -> str:
    """Lower-case the first letter after a greeting ("Bonjour, ma commande..."), but keep "I"."""
    if text.startswith(("I ", "I'")):
        return text
    return text[:1].lower() + text[1:]


def compose(rng: random.Random, theme: str, lang: str, mix_with: str | None = None) -> str:
    """1 to 4 sentences: an opening, details, maybe an ending; ``mix_with`` swaps one in from another theme."""
    parts = PARTS[theme, lang]
    count = rng.choices([1, 2, 3, 4], weights=[15, 35, 35, 15])[0]
    has_ending = count > 1 and rng.random() < 0.75
    sentences = [rng.choice(parts["opening"]), *rng.sample(parts["body"], count - 1 - has_ending)]
    if has_ending:
        sentences.append(rng.choice(parts["ending"]))
    if mix_with:
        other = PARTS[mix_with, lang]
        borrowed = rng.choice(other["opening"] + other["body"] + other["ending"])
        if len(sentences) == 1:
            sentences.append(borrowed)
        else:
            sentences[rng.randrange(1, len(sentences))] = borrowed
    if len(sentences) < 4 and rng.random() < 0.12:
        sentences.append(rng.choice(SIGN_OFFS[lang]))
    text = " ".join(sentences)
    if rng.random() < 0.25:
        text = f"{rng.choice(GREETINGS[lang])}, {lower_first(text)}"
    return text.format_map(slots(rng, lang))


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def noisy(rng: random.Random, theme: str, lang: str) -> str:
    """What people type on a phone: very short, or one sentence without care (case, accents, a typo)."""
    if rng.random() < 0.5:
        return rng.choice(SHORT[theme, lang])
    text = rng.choice(PARTS[theme, lang]["opening"]).format_map(slots(rng, lang)).lower().rstrip(".!? ")
    if lang == "fr" and rng.random() < 0.6:
        text = strip_accents(text)
    words = text.split(" ")
    long_words = [i for i, word in enumerate(words) if len(word) >= 5 and word.isalpha()]
    if long_words:
        i = rng.choice(long_words)
        j = rng.randrange(1, len(words[i]) - 2)
        word = words[i]
        words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2:]  # two letters swapped
    ending = rng.choice(["", " !!!", "??", " " + rng.choice(EMOJI[theme]), " " + EMOJI[theme][0] * 2])
    return " ".join(words) + ending


def numbers(rng: random.Random, theme: str) -> tuple[int, float, int]:
    _, (orders_median, orders_spread), (basket_median, basket_spread), (days_median, days_spread) = THEMES[theme]
    orders = max(1, round(rng.lognormvariate(math.log(orders_median), orders_spread)))
    revenue = orders * rng.lognormvariate(math.log(basket_median), basket_spread)
    days = min(730, round(rng.lognormvariate(math.log(days_median), days_spread)))
    return orders, round(revenue, 2), days


def generate(n: int = N_CUSTOMERS, seed: int = SEED) -> list[dict[str, str]]:
    rng = random.Random(seed)
    themes = list(THEMES)
    weights = [THEMES[t][0] for t in themes]
    rows = []
    for i in range(1, n + 1):
        theme = rng.choices(themes, weights)[0]
        lang = rng.choice(["fr", "en"])
        roll = rng.random()
        if roll < 0.04:
            text = noisy(rng, theme, lang)
        elif roll < 0.14:
            text = compose(rng, theme, lang, mix_with=rng.choice([t for t in themes if t != theme]))
        else:
            text = compose(rng, theme, lang)
        orders, revenue, days = numbers(rng, theme)
        rows.append({"id": f"C{i:04d}", "lang": lang, "feedback": text, "orders": str(orders),
                     "revenue": f"{revenue:.2f}", "days_since_last_order": str(days), "topic": theme})
    return rows


def to_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("customers.csv"))
    parser.add_argument("--n", type=int, default=N_CUSTOMERS, help="number of customers")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    rows = generate(args.n, args.seed)
    with open(args.out, "w", encoding="utf-8", newline="") as fh:
        fh.write(to_csv(rows))
    print(f"wrote {len(rows)} customers to {args.out}")


if __name__ == "__main__":
    main()
