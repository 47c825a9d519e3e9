"""Words and sentence templates that make the sample's OCR text read like real documents.

Each category has its own vocabulary, so a semantic search over the OCR pages can be judged:
a query such as "overdue payment" should land in invoices, "blood pressure" in medical reports.
Pure and deterministic: every function draws only from the ``random.Random`` it is given.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

MIN_PAGE_WORDS = 40
MAX_PAGE_WORDS = 120


@dataclass(frozen=True)
class Category:
    """How documents of one kind look: titles, an opening line, body sentences, fillers."""

    name: str
    titles: tuple[str, ...]
    headers: tuple[str, ...]
    sentences: tuple[str, ...]
    words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    context_slots: tuple[str, ...] = ()
    """Slots fixed once per document, so every page names the same invoice, patient, ..."""


FIRST_NAMES = (
    "Alice",
    "Bruno",
    "Chen",
    "Dana",
    "Elif",
    "Farid",
    "Grace",
    "Hiroshi",
    "Ines",
    "Jonas",
    "Kateryna",
    "Liam",
    "Maya",
    "Nikolai",
    "Olivia",
    "Pedro",
    "Quentin",
    "Rosa",
    "Samir",
    "Tamara",
    "Umar",
    "Valentina",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zoe",
)
LAST_NAMES = (
    "Anderson",
    "Becker",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Uchenna",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zhou",
)
COMPANIES = (
    "Acme Logistics",
    "Northwind Traders",
    "Blue Harbor Foods",
    "Helios Energy",
    "Granite Peak Builders",
    "Silverline Telecom",
    "Orchard Health Partners",
    "Keystone Metals",
    "Lumen Software",
    "Riverbend Paper Co.",
    "Atlas Freight",
    "Cobalt Analytics",
    "Maple & Finch Legal",
    "Summit Office Supply",
    "Tidewater Marine",
    "Evergreen Farms",
)
CITIES = (
    "Rotterdam",
    "Hamburg",
    "Singapore",
    "Chicago",
    "Lyon",
    "Osaka",
    "Toronto",
    "Valencia",
    "Gdansk",
    "Melbourne",
    "Denver",
    "Porto",
    "Antwerp",
    "Nairobi",
    "Seoul",
    "Montreal",
)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _date(rng: random.Random) -> str:
    return f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(2021, 2025)}"


def _amount(rng: random.Random) -> str:
    currency = rng.choice(("$", "EUR ", "GBP "))
    return f"{currency}{rng.randint(40, 48_000):,}.{rng.randint(0, 99):02d}"


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "person": _person,
    "date": _date,
    "amount": _amount,
    "company": lambda rng: rng.choice(COMPANIES),
    "city": lambda rng: rng.choice(CITIES),
    "n": lambda rng: str(rng.randint(2, 60)),
    "pct": lambda rng: f"{rng.randint(1, 35)}.{rng.randint(0, 9)}%",
    "ref": lambda rng: f"{rng.randint(10_000, 99_999)}",
}


CATEGORIES: dict[str, Category] = {
    c.name: c
    for c in (
        Category(
            name="invoice",
            titles=(
                "Invoice {invoice_no} from {vendor}",
                "{vendor} invoice {invoice_no}",
                "Payment reminder: invoice {invoice_no}",
            ),
            headers=(
                "INVOICE {invoice_no}. Issued by {vendor} to {company} on {date}.",
                "Tax invoice {invoice_no} from {vendor}, billing period {month}.",
            ),
            sentences=(
                "The total amount due is {amount} payable within {terms}.",
                "This invoice is now {n} days overdue and the outstanding balance remains unpaid.",
                "Please remit payment of {amount} to the account shown below to avoid a late fee.",
                "A late payment fee of {pct} per month will be charged on overdue balances.",
                "Line item: {service}, quantity {n}, unit price {amount}.",
                "Subtotal before VAT is {amount}; VAT at {pct} has been added to the total.",
                "Our records show that your payment is overdue; kindly settle the balance due.",
                "If payment has already been sent, please disregard this reminder and accept our "
                "thanks.",
                "Payment terms are {terms}; accounts receivable may be reached at "
                "billing@{domain}.",
                "Second notice: the balance of {amount} for {service} is past due.",
                "Remittance advice should quote invoice number {invoice_no} and the purchase "
                "order reference PO-{ref}.",
                "Unpaid invoices older than {n} days may be referred to a collection agency.",
                "Credit note CN-{ref} of {amount} has been applied against this invoice.",
            ),
            words={
                "terms": (
                    "net 30 days",
                    "net 15 days",
                    "14 days of the invoice date",
                    "net 60 days",
                    "30 days end of month",
                ),
                "service": (
                    "freight handling",
                    "software licence renewal",
                    "consulting hours",
                    "office supplies",
                    "cloud hosting",
                    "equipment rental",
                    "maintenance contract",
                    "translation services",
                ),
                "month": MONTHS,
                "domain": ("acme.example", "northwind.example", "helios.example"),
            },
            context_slots=("invoice_no", "vendor"),
        ),
        Category(
            name="contract",
            titles=(
                "{agreement} between {company} and {counterparty}",
                "{agreement} ({counterparty})",
                "Amendment to the {agreement}",
            ),
            headers=(
                "This {agreement} is entered into on {date} by and between {company} and "
                "{counterparty}.",
                "{agreement}. Parties: {company} (the Client) and {counterparty} (the Provider).",
            ),
            sentences=(
                "The term of this agreement shall commence on the effective date and continue "
                "for {n} months.",
                "Either party may terminate this agreement with {n} days written notice.",
                "The Provider shall keep all confidential information in strict confidence.",
                "This agreement shall be governed by the laws of {jurisdiction}.",
                "Each party shall indemnify and hold harmless the other party against third "
                "party claims.",
                "Neither party shall be liable for indirect or consequential damages.",
                "Any dispute arising under this agreement shall be settled by arbitration in "
                "{city}.",
                "The parties agree that this agreement constitutes the entire understanding "
                "between them.",
                "Obligations under the confidentiality clause survive termination of this "
                "agreement.",
                "No amendment shall be binding unless signed in writing by authorised "
                "signatories of both parties.",
                "The Client shall pay the fees set out in Schedule {schedule} within the agreed "
                "period.",
                "Force majeure events excuse performance for as long as they continue.",
                "Signed for and on behalf of {company} by {person}, {role}.",
            ),
            words={
                "agreement": (
                    "Master Services Agreement",
                    "Non-Disclosure Agreement",
                    "Lease Agreement",
                    "Supply Agreement",
                    "Employment Contract",
                    "Software Licence Agreement",
                ),
                "jurisdiction": (
                    "the State of Delaware",
                    "England and Wales",
                    "the Netherlands",
                    "the Province of Ontario",
                    "the State of New York",
                ),
                "schedule": ("A", "B", "C", "2"),
                "role": (
                    "Chief Executive Officer",
                    "General Counsel",
                    "Managing Director",
                    "Head of Procurement",
                ),
            },
            context_slots=("agreement", "counterparty"),
        ),
        Category(
            name="medical_report",
            titles=(
                "{report} for patient {patient}",
                "{report}, {clinic}",
                "Discharge summary: {patient}",
            ),
            headers=(
                "{report}. Patient: {patient}. Date of examination: {date}. {clinic}.",
                "{clinic} clinical report for {patient}, attending physician Dr. {doctor}.",
            ),
            sentences=(
                "The patient presented with {symptom} lasting {n} days.",
                "Blood pressure was measured at {bp} mmHg and heart rate at {hr} beats per minute.",
                "Diagnosis: {diagnosis}; further tests have been ordered.",
                "Prescribed {medication} {dose} twice daily for {n} days.",
                "Laboratory results show {lab} within the normal reference range.",
                "The radiology scan revealed no evidence of fracture or acute abnormality.",
                "A follow-up appointment is scheduled in {n} weeks to review the treatment.",
                "The patient reports no known drug allergies and is a non-smoker.",
                "Physical examination of the chest and abdomen was unremarkable.",
                "Symptoms improved after treatment and the patient was discharged in stable "
                "condition.",
                "Family history includes {diagnosis} in a first degree relative.",
                "Dr. {doctor} recommends rest, hydration and monitoring of {symptom}.",
            ),
            words={
                "report": (
                    "Outpatient consultation report",
                    "Radiology report",
                    "Laboratory report",
                    "Cardiology assessment",
                    "Discharge summary",
                ),
                "clinic": (
                    "St. Mary's Hospital",
                    "Riverside Medical Centre",
                    "Northgate Family Clinic",
                    "University Cardiology Unit",
                ),
                "symptom": (
                    "persistent cough",
                    "chest pain",
                    "lower back pain",
                    "headache",
                    "shortness of breath",
                    "abdominal pain",
                    "fatigue and dizziness",
                ),
                "diagnosis": (
                    "hypertension",
                    "type 2 diabetes",
                    "acute bronchitis",
                    "migraine",
                    "iron deficiency anaemia",
                    "lumbar strain",
                    "asthma",
                ),
                "medication": (
                    "amoxicillin",
                    "lisinopril",
                    "metformin",
                    "ibuprofen",
                    "salbutamol",
                    "atorvastatin",
                ),
                "dose": ("250 mg", "500 mg", "10 mg", "20 mg", "100 mcg"),
                "lab": (
                    "haemoglobin",
                    "serum creatinine",
                    "fasting glucose",
                    "cholesterol",
                    "white blood cell count",
                ),
                "bp": ("118/76", "135/88", "142/91", "126/80", "150/95"),
                "hr": ("64", "72", "81", "95", "58"),
            },
            context_slots=("patient", "doctor", "clinic", "report"),
        ),
        Category(
            name="shipping_manifest",
            titles=(
                "Shipping manifest {bl_no}, vessel {vessel}",
                "Cargo manifest {bl_no}",
                "Bill of lading {bl_no}",
            ),
            headers=(
                "CARGO MANIFEST. Bill of lading {bl_no}. Vessel {vessel}, voyage {ref}.",
                "Shipper {company}; consignee {consignee}; port of loading {port}.",
            ),
            sentences=(
                "Container {container} loaded with {n} pallets of {goods}.",
                "Port of loading {port}; port of discharge {port2}; estimated arrival {date}.",
                "Gross weight {weight} kg, net weight {weight} kg, volume {n} cubic metres.",
                "Goods were received in apparent good order and condition for shipment.",
                "Customs declaration {ref} filed with HS code {hs}.",
                "Freight prepaid; incoterms {incoterm} as agreed between shipper and consignee.",
                "The consignment was sealed with seal number SL{ref} before departure.",
                "Hazardous materials: none declared for this shipment.",
                "Notify party: {consignee}, {city}, upon arrival of the vessel.",
                "Temperature controlled container set to {temp} degrees Celsius.",
                "{n} cartons of {goods} were transshipped at {port2}.",
            ),
            words={
                "vessel": (
                    "MV Nordic Star",
                    "MSC Aurora",
                    "Maersk Halifax",
                    "CMA CGM Tigris",
                    "Ever Gentle",
                ),
                "port": ("Rotterdam", "Shanghai", "Singapore", "Los Angeles", "Hamburg"),
                "port2": ("Antwerp", "Felixstowe", "Busan", "Valencia", "New York"),
                "goods": (
                    "frozen seafood",
                    "machine parts",
                    "cotton textiles",
                    "consumer electronics",
                    "coffee beans",
                    "auto parts",
                    "furniture",
                ),
                "incoterm": ("FOB", "CIF", "DAP", "EXW", "DDP"),
                "hs": ("8471.30", "0303.89", "5208.12", "0901.11", "9403.60"),
                "temp": ("-18", "4", "-25", "2"),
                "container": ("MSCU4820193", "MAEU7731045", "CMAU1102938", "TGHU9034412"),
                "weight": ("12,400", "8,950", "21,730", "4,320", "17,060"),
            },
            context_slots=("bl_no", "vessel", "consignee"),
        ),
        Category(
            name="resume",
            titles=(
                "Curriculum vitae: {candidate}",
                "Resume of {candidate}, {job}",
                "{candidate} - CV",
            ),
            headers=(
                "{candidate}. {job}. {city}. Email {email_user}@mail.example.",
                "CURRICULUM VITAE. {candidate}, experienced {job}.",
            ),
            sentences=(
                "Over {n} years of professional experience as a {job}.",
                "Led a team of {n} engineers to deliver {project} on time and under budget.",
                "Skills: {skill}, {skill2}, stakeholder communication and mentoring.",
                "Education: {degree} from {university}.",
                "Managed the migration of {project}, reducing operating costs by {pct}.",
                "Responsible for hiring, coaching and performance reviews of junior staff.",
                "Certified in {cert}; fluent in English and {language}.",
                "Previously worked at {company} in {city} as a senior {job}.",
                "Designed and implemented {project} used by thousands of customers.",
                "References available upon request.",
                "Hobbies include {hobby} and volunteering at local community events.",
            ),
            words={
                "job": (
                    "software engineer",
                    "data analyst",
                    "project manager",
                    "accountant",
                    "marketing specialist",
                    "nurse",
                    "logistics coordinator",
                ),
                "skill": (
                    "Python",
                    "SQL",
                    "financial modelling",
                    "project planning",
                    "machine learning",
                    "negotiation",
                    "customer support",
                ),
                "skill2": ("Kubernetes", "Excel", "Tableau", "Agile methods", "public speaking"),
                "project": (
                    "a customer billing platform",
                    "an inventory tracking system",
                    "the company data warehouse",
                    "a mobile banking app",
                ),
                "degree": (
                    "BSc in Computer Science",
                    "MBA",
                    "MSc in Statistics",
                    "BA in Economics",
                    "BSc in Nursing",
                ),
                "university": (
                    "the University of Toronto",
                    "TU Delft",
                    "the University of Lyon",
                    "Seoul National University",
                ),
                "cert": ("PMP", "AWS Solutions Architect", "CPA", "Scrum Master"),
                "language": ("Spanish", "German", "French", "Japanese", "Polish"),
                "hobby": ("long distance running", "chess", "photography", "sailing"),
                "email_user": ("jobs", "cv", "contact"),
            },
            context_slots=("candidate", "job"),
        ),
        Category(
            name="bank_statement",
            titles=(
                "{bank} statement, account {account}",
                "Account statement {month} ({bank})",
                "{bank} monthly statement",
            ),
            headers=(
                "{bank}. Statement of account {account} for {month}. Account holder {holder}.",
                "Monthly account statement, {bank}, sort code {sort_code}, account {account}.",
            ),
            sentences=(
                "Opening balance {amount}; closing balance {amount}.",
                "Direct debit to {company} of {amount} on {date}.",
                "Card transaction at {merchant} {city}, amount {amount}.",
                "Salary deposit from {company} credited {amount}.",
                "ATM cash withdrawal of {amount} at {city} branch.",
                "Interest earned this period at an annual rate of {pct}.",
                "Standing order transfer to savings account {account2} of {amount}.",
                "Monthly account maintenance fee {amount} charged.",
                "Incoming SEPA transfer reference {ref} from {holder2}.",
                "Total credits {amount} and total debits {amount} for the statement period.",
                "Your overdraft limit remains {amount}; no overdraft interest was charged.",
            ),
            words={
                "bank": (
                    "First Federal Bank",
                    "Harbour Savings",
                    "Banco Ribera",
                    "Nordic Credit Union",
                    "Pacific Trust Bank",
                ),
                "merchant": (
                    "SuperMart",
                    "City Fuel",
                    "Cafe Lumiere",
                    "BookNook",
                    "Metro Transit",
                    "Pharmacy Plus",
                ),
                "sort_code": ("20-45-77", "40-11-62", "30-98-15"),
                "month": MONTHS,
                "account2": ("SAV-2291", "SAV-7810", "SAV-4402"),
                "holder2": ("Jordan Ellis", "Priya Shah", "Marco Bianchi"),
            },
            context_slots=("bank", "account", "holder"),
        ),
        Category(
            name="insurance_claim",
            titles=(
                "Insurance claim {claim_no} - {peril}",
                "Claim form {claim_no}",
                "{insurer} claim {claim_no}",
            ),
            headers=(
                "CLAIM FORM {claim_no}. Insurer {insurer}. Policyholder {policyholder}, "
                "policy {policy_no}.",
                "Notice of loss for policy {policy_no}: {peril} reported on {date}.",
            ),
            sentences=(
                "The policyholder reports {peril} that occurred on {date} in {city}.",
                "Estimated cost of repair to the {property} is {amount}.",
                "The deductible of {amount} applies to this claim under the policy terms.",
                "An adjuster, {person}, inspected the damage and photographed the {property}.",
                "The police report number {ref} was attached to the claim form.",
                "Coverage is confirmed under the {coverage} section of the policy.",
                "The claimant requests reimbursement for temporary accommodation and repairs.",
                "A witness statement describes the incident and the sequence of events.",
                "The claim has been approved for settlement of {amount} less the deductible.",
                "Further documentation, including receipts and invoices for repairs, is required "
                "before the claim can be assessed.",
                "No prior claims were filed for this property within the last {n} years.",
            ),
            words={
                "insurer": ("Guardian Mutual", "Shield Insurance", "Allied Cover", "Beacon Life"),
                "peril": (
                    "water damage from a burst pipe",
                    "a rear-end vehicle collision",
                    "storm damage to the roof",
                    "theft of personal belongings",
                    "a kitchen fire",
                    "hail damage to the vehicle",
                ),
                "property": ("vehicle", "roof", "kitchen", "basement", "front door", "windscreen"),
                "coverage": ("comprehensive", "collision", "home contents", "buildings"),
            },
            context_slots=("claim_no", "policy_no", "policyholder", "insurer", "peril"),
        ),
        Category(
            name="tax_return",
            titles=(
                "Tax return {tax_year} for {taxpayer}",
                "Form {form} ({tax_year})",
                "Annual tax filing {tax_year}",
            ),
            headers=(
                "INDIVIDUAL TAX RETURN {tax_year}. Form {form}. Taxpayer {taxpayer}, "
                "identification number {tin}.",
                "Tax year {tax_year} return prepared for {taxpayer}, filing status "
                "{filing_status}.",
            ),
            sentences=(
                "Total wages, salaries and tips reported: {amount}.",
                "Taxable income after deductions amounts to {amount}.",
                "Itemized deductions include mortgage interest and charitable contributions of "
                "{amount}.",
                "Federal income tax withheld during the year was {amount}.",
                "The taxpayer claims {n} dependents and the child tax credit.",
                "Capital gains reported on Schedule {schedule} total {amount}.",
                "Based on the computation the refund due to the taxpayer is {amount}.",
                "Estimated tax payments made in quarterly instalments total {amount}.",
                "The return was prepared by {preparer} and signed under penalty of perjury.",
                "Filing status: {filing_status}; standard deduction not applied.",
                "Self-employment income from {company} is reported on Schedule C.",
            ),
            words={
                "form": ("1040", "1040-SR", "SA100", "T1 General"),
                "filing_status": ("single", "married filing jointly", "head of household"),
                "schedule": ("D", "B", "E"),
                "preparer": (
                    "Brightline Tax Services",
                    "Ledger & Co. Accountants",
                    "QuickFile Tax Partners",
                ),
                "tax_year": ("2022", "2023", "2024"),
            },
            context_slots=("taxpayer", "tin", "tax_year"),
        ),
    )
}

CATEGORY_NAMES: tuple[str, ...] = tuple(CATEGORIES)

_CONTEXT_GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "invoice_no": lambda rng: f"INV-{rng.randint(2021, 2025)}-{rng.randint(1, 99_999):05d}",
    "vendor": lambda rng: rng.choice(COMPANIES),
    "counterparty": lambda rng: rng.choice(COMPANIES),
    "patient": _person,
    "doctor": lambda rng: rng.choice(LAST_NAMES),
    "bl_no": lambda rng: f"BL{rng.randint(10_000_000, 99_999_999)}",
    "consignee": lambda rng: rng.choice(COMPANIES),
    "candidate": _person,
    "account": lambda rng: f"{rng.randint(10_000_000, 99_999_999)}",
    "holder": _person,
    "claim_no": lambda rng: f"CLM-{rng.randint(100_000, 999_999)}",
    "policy_no": lambda rng: f"POL-{rng.randint(1_000_000, 9_999_999)}",
    "policyholder": _person,
    "taxpayer": _person,
    "tin": lambda rng: f"{rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
}

_SLOT = re.compile(r"\{(\w+)\}")


def _fill(rng: random.Random, category: Category, slot: str, context: Mapping[str, str]) -> str:
    if slot in context:
        return context[slot]
    if slot in category.words:
        return rng.choice(category.words[slot])
    if slot in GENERATORS:
        return GENERATORS[slot](rng)
    if slot in _CONTEXT_GENERATORS:
        return _CONTEXT_GENERATORS[slot](rng)
    raise KeyError(f"no filler for slot {slot!r} in category {category.name!r}")


def render(
    rng: random.Random, category: Category, template: str, context: Mapping[str, str]
) -> str:
    """Fill every ``{slot}`` of ``template``: document context first, then fillers."""
    return _SLOT.sub(lambda m: _fill(rng, category, m.group(1), context), template)


def document_context(rng: random.Random, category: str) -> dict[str, str]:
    """Values that stay fixed across one document's title and pages."""
    cat = CATEGORIES[category]
    return {slot: _fill(rng, cat, slot, {}) for slot in cat.context_slots}


def document_title(rng: random.Random, category: str, context: Mapping[str, str]) -> str:
    cat = CATEGORIES[category]
    return render(rng, cat, rng.choice(cat.titles), context)


def page_text(
    rng: random.Random, category: str, page_number: int, context: Mapping[str, str]
) -> str:
    """One OCR page of 40-120 words; page 1 opens with the document's header line."""
    cat = CATEGORIES[category]
    target = rng.randint(MIN_PAGE_WORDS, MAX_PAGE_WORDS)
    parts: list[str] = []
    words = 0
    if page_number == 1:
        header = render(rng, cat, rng.choice(cat.headers), context)
        parts.append(header + "\n")
        words = len(header.split())
    order: list[int] = []
    while words < target:
        if not order:
            order = rng.sample(range(len(cat.sentences)), len(cat.sentences))
        sentence = render(rng, cat, cat.sentences[order.pop()], context)
        n = len(sentence.split())
        if words >= MIN_PAGE_WORDS and words + n > MAX_PAGE_WORDS:
            break
        parts.append(sentence + ("\n" if rng.random() < 0.2 else " "))
        words += n
    return "".join(parts).rstrip()
